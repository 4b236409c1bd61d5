// A SentencePiece BPE trainer for small closed worlds: learns a tokenizer.model that data/tokenizer_sp.c (and
// the `sentencepiece` package) read exactly as they read LLaMA's, with a vocabulary the size of the corpus.
//
// What it learns, for a corpus of texts:
//   1. Each text is cut at the special-token strings the encoder splits out (<s> </s> <unk> <image> <pad>) and
//      each segment is normalized as LLaMA's model does it (dummy-prefix "▁", every " " -> "▁"), so the words
//      counted are the ones the encoder will see, the text after "<image>\n" included.
//   2. Each segment is cut into words the way SentencePiece's trainer does with LLaMA's settings: a word starts
//      at each "▁" and wherever the character class changes (letters, digits, other), and every digit is a word
//      of its own (split_digits). "▁" belongs to the word it starts. No piece crosses these boundaries, so no
//      merge can join two words at encoding time either.
//   3. BPE: starting from single characters, the most frequent adjacent pair (counted over the words, weighted
//      by how often each occurs; ties: shorter, then bytewise smaller piece) becomes a new piece, until every
//      word is one piece or the vocabulary cap is reached. The pair counts come from segmenting each word with
//      the encoder's own rule (data/bpe.h: the pair whose concatenation is the highest-scoring piece merges
//      first, leftmost on ties) over the pieces learned so far, so what was learned is what the encoder does:
//      every word of the corpus encodes as one piece.
//
// The model: <unk> <s> </s> (ids 0, 1, 2 as in LLaMA), the 256 byte-fallback pieces <0x00>..<0xFF>, the corpus'
// characters (most frequent first), then the merged pieces in the order they were learned. Every ordinary piece
// scores minus its rank among the ordinary pieces, so earlier merges outrank later ones (single characters are
// never the result of a merge, their scores play no part). trainer_spec says BPE with byte fallback, unk/bos/eos
// 0/1/2 and no pad; normalizer_spec is LLaMA's ("identity", dummy prefix on, whitespace escaped, extra
// whitespace kept). Deterministic: the same texts with the same counts, in any order, give the same bytes.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct SpTrainer SpTrainer;

typedef struct {
    int max_pieces;  // cap on the number of pieces, specials and byte pieces included (0: 8000)
} SpTrainOptions;

typedef struct {
    int n_pieces;        // pieces in the model
    int n_chars;         // single-character pieces
    int n_merges;        // merged pieces
    int n_words;         // distinct words in the corpus
    int n_words_split;   // words that are still more than one piece (only when the cap stopped training)
    long long n_tokens;  // word occurrences counted
} SpTrainStats;

SpTrainer *sptrain_new(void);
void sptrain_free(SpTrainer *tr);
// Adds text[0..len) (UTF-8) to the corpus as if it occurred `count` times. Ill-formed UTF-8 is left out of
// the words (the encoder gives it byte pieces).
void sptrain_add(SpTrainer *tr, const char *text, size_t len, long count);
// Learns the pieces and serializes the ModelProto. Returns a malloc'd buffer (*len bytes), or NULL with a
// message in err (an empty corpus, a cap too small for the characters).
uint8_t *sptrain_build(SpTrainer *tr, const SpTrainOptions *opt, size_t *len, SpTrainStats *stats, char *err,
                       size_t errlen);
