// The CLIP text tokenizer (openai/CLIP clip/simple_tokenizer.py; HF CLIPTokenizer), built from
// bpe_simple_vocab_16e6.txt.gz.
//
// Vocabulary (49408): the 256 byte symbols of GPT-2's bytes_to_unicode (printable bytes first, in that order),
// the same 256 with the end-of-word suffix "</w>", one token per merge (the first 48894 merge lines), then
// <|startoftext|> = 49406 and <|endoftext|> = 49407.
//
// Encoding: clean the text (below), split it into words with the pattern
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (whitespace separates words and is dropped; every digit is a word of its own), then BPE each word's UTF-8
// bytes, "</w>" on the last byte, always merging the pair with the lowest merge rank.
//
// Cleaning, as the OpenAI tokenizer does it (ftfy.fix_text, html.unescape twice, whitespace collapse, strip,
// lowercase). What is implemented of ftfy and html.unescape, and what is not:
//   - ftfy (line by line, each line fixed until it stops changing): HTML entity decoding (until the first line
//     that contains '<'), C1 controls read as Windows-1252, Latin ligatures (ﬁ -> fi), character width
//     (fullwidth ASCII, halfwidth kana, U+3000 -> space), curly quotes -> ' and ", removal of the control
//     characters ftfy removes, and NFC (full: decomposition, canonical ordering, composition; generated
//     tables). Not implemented: mojibake repair (fix_encoding, e.g.
//     "sÃ³" -> "só") and terminal escape removal.
//   - html.unescape: numeric references (&#39; &#x41;, with or without ';', with HTML5's replacements for
//     invalid numbers) and about 100 common named entities (&amp; &lt; &gt; &quot; &apos; &nbsp; &copy;
//     &eacute; ...). Other named entities (HTML5 has 2231) are left as written.
//   - lowercase: Python's str.lower() for every code point (generated table), U+0130 -> "i̇", and final sigma
//     (Σ at the end of a word -> ς; a word here is a run of letters).
//   - letters and numbers: the full \p{L} / \p{N} of the regex module (generated tables); U+0345, which the
//     pattern's IGNORECASE flag puts in no class, is skipped as the regex module does.
// ASCII text is unaffected by every one of these limits.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define CLIP_VOCAB_SIZE 49408
#define CLIP_SOT 49406
#define CLIP_EOT 49407
#define CLIP_CONTEXT 77

typedef struct {
    int vocab_size;          // 49408
    char **tokens;           // (vocab_size) token strings in the byte-symbol alphabet, "</w>" included
    int *token_len;          // (vocab_size)
    int byte_id[256];        // symbol of byte b (without </w>); byte_id[b] + 256 is the same with </w>
    uint8_t cp_to_byte[324]; // inverse of bytes_to_unicode: symbol code point -> byte (code points < 324)
    // merge ranks: key (left id << 32 | right id), open addressing
    uint64_t *merge_keys;
    int *merge_rank;
    uint32_t merge_mask;
    // token string -> id (for the merges file), open addressing
    int *str_table;
    uint32_t str_mask;
    char *source;            // file name, for messages
} ClipTokenizer;

// Loads bpe_simple_vocab_16e6.txt.gz (gzip or plain text); dies naming the file when it is missing or malformed.
ClipTokenizer *cliptok_load(const char *path);
void cliptok_free(ClipTokenizer *t);

// The cleaned text (see above) as a malloc'd NUL-terminated UTF-8 string: what the word split sees.
char *cliptok_clean(const char *text, size_t len);
// BPE token ids of text[0..len), without <|startoftext|>/<|endoftext|>. Returns the count; *ids is malloc'd.
int cliptok_encode(const ClipTokenizer *t, const char *text, size_t len, int **ids);
// OpenAI clip.tokenize(text, context_length=ctx, truncate=True) for one text: out[0..ctx) =
// [49406] + tokens + [49407], cut to ctx tokens with the last one forced to 49407, then padded with pad_id
// (OpenAI pads with 0; HF's OpenAI repos pad with 49407: pooling takes the first 49407, so either works).
// Returns the number of tokens before padding.
int cliptok_tokenize(const ClipTokenizer *t, const char *text, size_t len, int ctx, int pad_id, int *out);
// OpenAI's decode: token strings joined, symbols mapped back to bytes, invalid UTF-8 replaced by U+FFFD,
// "</w>" -> " ". skip_special drops 49406/49407. Ids must be in [0, vocab_size). Returns a malloc'd string.
char *cliptok_decode(const ClipTokenizer *t, const int *ids, int n, int skip_special, size_t *out_len);
