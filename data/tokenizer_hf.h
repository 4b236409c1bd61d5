// A Hugging Face tokenizer.json with a byte-level BPE model (Qwen1.5/Qwen2, the LLM of LLaVA-Interleave-Qwen;
// also Llama-3's layout), read directly from the JSON and encoding as the `tokenizers` library does (the fast
// tokenizer transformers runs), id for id.
//
// Encoding, in the library's order:
//   1. Added tokens (the file's "added_tokens", special or not) are split out of the raw text first: at each place
//      the longest token that matches there, leftmost first. A token with lstrip/rstrip also takes the whitespace
//      before/after it; a single_word token matches only between non-word characters. Tokens marked "normalized"
//      are matched after normalization, against their normalized content.
//   2. Every other stretch of text is normalized (NFC, when the normalizer says so) and cut into pre-tokens by the
//      Split pattern of Qwen2,
//          (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//      or Llama-3's (the same with \p{N}{1,3}), implemented by hand with the classes of the library's regex engine
//      (Oniguruma: \s is Unicode White_Space, case-insensitive 's also matches 'ſ; data/unicode.h).
//   3. ByteLevel: each pre-token becomes its UTF-8 bytes, each byte one symbol of GPT-2's byte alphabet.
//   4. BPE: with ignore_merges, a pre-token that is a whole vocabulary entry is that one token; otherwise the adjacent
//      pair with the lowest merge rank merges first (leftmost on ties) until no pair has a rank (data/bpe.c).
//   5. With add_special, the post-processor's template adds its special tokens around the text (Qwen2's ByteLevel
//      post-processor adds none; a TemplateProcessing one, e.g. Llama-3's, adds <|begin_of_text|>).
// Decoding (the ByteLevel decoder): each token's characters go back to their bytes (a token with a character outside
// the byte alphabet stays as its UTF-8 text), the bytes are read as UTF-8 with each ill-formed stretch replaced by
// U+FFFD; skip_special drops the added tokens marked special.
//
// What a file may say, and anything else is refused with a message naming the file and the field: model BPE
// (vocab; merges as "a b" strings or [a, b] pairs, rank = position, a repeated pair keeping its last rank as the
// library does; ignore_merges; unk_token and fuse_unk; no dropout, byte fallback, subword prefix or suffix),
// normalizer null or NFC (or a Sequence of NFC), pre_tokenizer Sequence[Split(one of the two patterns, Isolated),
// ByteLevel(add_prefix_space false, use_regex false)], post_processor null, ByteLevel, TemplateProcessing (its
// "single" template) or a Sequence of those, decoder ByteLevel, truncation and padding null.
//
// Limits, where this differs from the library: text that is not valid UTF-8 is read with U+FFFD for each ill-formed
// stretch (Python cannot hand the library such text); NFC uses Python's Unicode 14 tables (the library's Rust crate
// knows a newer Unicode: compositions added since would differ); single_word's word characters are \p{L}, \p{N} and
// '_' (Rust's is_alphanumeric also counts the marks that are Alphabetic).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int id;
    uint32_t *cps;   // (n_cps) the content as code points (NFC'd when normalized and the normalizer is NFC)
    int n_cps;
    int special, lstrip, rstrip, normalized, single_word;
} HfAddedToken;

typedef struct {
    int vocab_size;        // 1 + the largest id of the vocabulary and the added tokens
    int n_vocab;           // entries of model.vocab
    int n_merges;
    // Per id (vocab_size): the token as the file writes it, and the bytes it decodes to (ByteLevel); offsets
    // into pool, -1 for an id nothing uses.
    char *pool;
    int64_t *tok_off, *dec_off;
    int *tok_len, *dec_len;
    uint8_t *is_special;   // (vocab_size) added tokens marked special (skipped by decode with skip_special)
    int byte_id[256];      // the vocabulary id of each byte's one-character token, -1 when missing
    // decoded bytes -> id over the vocabulary entries BPE can produce (all characters in the byte alphabet)
    int *vocab_table;
    uint32_t vocab_mask;
    // merges: (left id << 32 | right id) -> rank and merged id, open addressing
    uint64_t *merge_key;
    int *merge_rank, *merge_id;
    uint32_t merge_mask;
    HfAddedToken *added;   // (n_added) in file order
    int n_added;
    int any_normalized_added, any_raw_added;
    // added tokens by the low byte of their first code point, longest first within a bucket (indices into added)
    int bucket_start[257], *bucket;
    int nfc;               // normalizer: NFC
    int max_digits;        // the pattern's \p{N}{1,max_digits}: 1 Qwen2, 3 Llama-3
    int ignore_merges, unk_id, fuse_unk;
    int prefix[8], n_prefix, suffix[8], n_suffix;  // ids the post-processor adds around a text (add_special)
    char *source;          // the file name, for messages
} HfTokenizer;

// Loads a tokenizer.json; dies with a message naming the file and the field when it is missing, malformed or
// describes something not supported (see above).
HfTokenizer *hftok_load(const char *path);
// Parses a tokenizer.json already in memory. NULL and a message naming `name` in err on bad input (never exits).
HfTokenizer *hftok_load_buffer(const char *data, size_t len, const char *name, char *err, size_t errlen);
// The same from a parsed document (tests build variants of a file this way).
typedef struct cJSON cJSON;
HfTokenizer *hftok_load_json(const cJSON *root, const char *name, char *err, size_t errlen);
void hftok_free(HfTokenizer *t);

// Encodes text[0..len) (UTF-8, need not be NUL-terminated). add_special: the post-processor's special tokens
// (transformers' add_special_tokens=True). Returns the count; *ids is malloc'd. spans, if not NULL, gets a malloc'd
// (n, 2) array: the [start, end) bytes of text each token came from (a token holding part of a character spans the
// whole character; the post-processor's tokens get empty ranges at 0 and len).
int hftok_encode(const HfTokenizer *t, const char *text, size_t len, int add_special, int **ids, int **spans);

// Decodes as the library's decode(ids, skip_special_tokens). Ids must be in [0, vocab_size) (an id no token uses
// gives nothing, as in the library). Returns a malloc'd NUL-terminated string; *out_len may be NULL.
char *hftok_decode(const HfTokenizer *t, const int *ids, int n, int skip_special, size_t *out_len);

// The id of an added token's content, else of a vocabulary entry written as in the file; -1 if none.
int hftok_token_id(const HfTokenizer *t, const char *token);
