// The byte-pair-encoding merge loop shared by the SentencePiece, CLIP and tokenizer.json tokenizers, and GPT-2's byte
// alphabet, which the byte-level ones (CLIP, tokenizer.json) write their tokens in.
//
// A word starts as a sequence of symbols (characters or bytes). Repeatedly, among all adjacent pairs that can
// merge, the one with the highest priority is merged (the leftmost one on ties), until no pair can merge.
// SentencePiece's priority is the merged piece's score; CLIP's is minus the merge rank. Both reference
// implementations (sentencepiece's bpe_model.cc and the tokenizers library) use a priority queue ordered the
// same way, so does this: O(n log n) for n symbols, which keeps 100 KB of text well under a second.
#pragma once
#include <stdint.h>

typedef struct {
    int id;          // token id of the symbol (-1: not in the vocabulary, e.g. a character left to byte fallback)
    int start, len;  // the bytes it covers in the caller's buffer (merged symbols cover both halves)
    int prev, next;  // neighbours in the list (-1 at the ends); a merged-away symbol has len == 0
} BpeSymbol;

// Says whether adjacent symbols a, b merge: returns 1 and sets *merged_id and *priority (higher merges first).
typedef int (*BpeCanMerge)(const void *ctx, const BpeSymbol *a, const BpeSymbol *b, int *merged_id, float *priority);

// Runs the merges over syms[0..n), which must be linked in order (prev/next). The survivors stay linked from
// syms[0] (symbol 0 is never merged away: a merge keeps the left symbol).
void bpe_merge(BpeSymbol *syms, int n, BpeCanMerge can_merge, const void *ctx);

// GPT-2's bytes_to_unicode: the code point that stands for each byte in a byte-level vocabulary. Printable bytes
// ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) keep their own code point, the other 68 get 256, 257, ... in byte
// order (so every symbol is below BPE_BYTE_CP_END). order lists the bytes printable ones first, as the CLIP
// vocabulary does; it may be NULL.
#define BPE_BYTE_CP_END 324
void bpe_byte_alphabet(uint32_t cp_of[256], int order[256]);
