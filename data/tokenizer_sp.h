// The LLaMA SentencePiece tokenizer (BPE with byte fallback), read directly from a tokenizer.model file, with
// LLaVA's added tokens, encoding as llava-hf/llava-1.5-7b-hf's (legacy) Hugging Face tokenizer does:
//
//   1. Added and special tokens written in the text (<s> </s> <unk> <image> <pad>) are split out first and map
//      straight to their ids (skipped with SPTOK_RAW, which gives the `sentencepiece` package's encode()).
//   2. Every other non-empty segment is normalized on its own: a dummy-prefix "▁" in front ("legacy": every
//      segment, so the text after <image> starts with "▁" too) and each " " -> "▁".
//   3. BPE over the segment's characters: the adjacent pair whose concatenation is a piece with the highest
//      score merges first, leftmost on ties; characters that end up in no piece become their UTF-8 bytes'
//      <0xNN> pieces (byte fallback).
//
// So "USER: <image>\nWhat" -> ▁US ER : ▁ <image> ▁ <0x0A> What (the ids transformers' LLaVA tests expect), and
// plain text matches sentencepiece's encode() id for id (tests/fixtures/tokenizers/sp.jsonl).
#pragma once
#include <stddef.h>
#include <stdint.h>

enum { SP_PIECE_NORMAL = 1, SP_PIECE_UNKNOWN = 2, SP_PIECE_CONTROL = 3, SP_PIECE_USER_DEFINED = 4,
       SP_PIECE_UNUSED = 5, SP_PIECE_BYTE = 6, SP_PIECE_ADDED = 100 /* ours: LLaVA's <image>, <pad> */ };

// Encode flags.
enum { SPTOK_BOS = 1, SPTOK_EOS = 2, SPTOK_RAW = 4 /* no special-token parsing: sentencepiece semantics */ };

typedef struct {
    int n_pieces;       // pieces in the .model (32000 for LLaMA)
    int vocab_size;     // n_pieces + added tokens (32002 with <image>, <pad>)
    char **pieces;      // (vocab_size) UTF-8 piece strings
    int *piece_len;     // (vocab_size)
    float *scores;      // (vocab_size)
    uint8_t *types;     // (vocab_size) SP_PIECE_*
    int unk_id, bos_id, eos_id, pad_id;  // from the model's trainer_spec (pad -1: none)
    int image_id;       // <image> (32000)
    int llava_pad_id;   // LLaVA's <pad> (32001)
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;  // from normalizer_spec
    int byte_id[256];   // id of <0xNN>, -1 when the model has no byte pieces
    // piece string -> id, open addressing over NORMAL and USER_DEFINED pieces (the ones BPE may produce)
    int *table;
    uint32_t table_mask;
    // strings split out of the text before BPE unless SPTOK_RAW: control, unknown and added pieces
    int n_special;
    int special_ids[16];
    char *source;       // the file name, for messages
} SpTokenizer;

// Loads a tokenizer.model; dies with a message naming the file if it is missing, truncated or not a BPE model.
SpTokenizer *sptok_load(const char *path);
// Parses a tokenizer.model already in memory. Returns NULL and writes a message naming `name` into err on a
// malformed or unsupported file (never exits), so tests and tools can check bad input.
SpTokenizer *sptok_load_buffer(const uint8_t *data, size_t len, const char *name, char *err, size_t errlen);
void sptok_free(SpTokenizer *t);

// Encodes text[0..len) (UTF-8, need not be NUL-terminated). Returns the number of ids; *ids gets a malloc'd
// array. spans, if not NULL, gets a malloc'd (n, 2) array: the [start, end) byte range of text each token
// came from (the dummy-prefix "▁" alone maps to an empty range at its segment's start; BOS/EOS to empty ranges
// at 0 and len). Chat templates use the spans to find the tokens of the assistant's response.
int sptok_encode(const SpTokenizer *t, const char *text, size_t len, int flags, int **ids, int **spans);

// Decodes ids as the HF tokenizer does: pieces concatenated with "▁" -> " ", runs of <0xNN> pieces turned back
// into bytes (a run that is not valid UTF-8 becomes one U+FFFD per byte), then one leading space removed.
// skip_special drops control/unknown/added tokens (HF skip_special_tokens=True); otherwise they appear as text.
// Every id must be in [0, vocab_size). Returns a malloc'd NUL-terminated string; *out_len may be NULL.
char *sptok_decode(const SpTokenizer *t, const int *ids, int n, int skip_special, size_t *out_len);

// The id of a piece string, or -1 (any piece type, added tokens included).
int sptok_piece_id(const SpTokenizer *t, const char *piece);
