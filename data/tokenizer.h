// The text tokenizer of a model folder, whichever kind it carries: LLaMA's SentencePiece tokenizer.model
// (data/tokenizer_sp.h: LLaVA-1.5, Vicuna) or a Hugging Face tokenizer.json with a byte-level BPE (data/tokenizer_hf.h:
// Qwen2, LLaVA-Interleave-Qwen). Chat templates, `vlm logprobs`, `vlm sample`, training data and `vlm tokenize` go
// through this one handle; a folder with both files uses tokenizer.model, as the tools always have.
//
// Flags mean what they mean for the HF tokenizer of each kind:
//   TOK_BOS  sp: <s> first (add_special_tokens of llava-hf's tokenizer); json: the post-processor's tokens
//            (add_special_tokens=True: none for Qwen2, <|begin_of_text|> for a Llama-3 template)
//   TOK_EOS  the end token last: sp </s>; json the eos_token of tokenizer_config.json beside the file
//   TOK_RAW  sp only: no special-token parsing (the sentencepiece package's encode())
#pragma once
#include <stddef.h>

#include "tokenizer_hf.h"
#include "tokenizer_sp.h"

enum { TOK_BOS = SPTOK_BOS, TOK_EOS = SPTOK_EOS, TOK_RAW = SPTOK_RAW };

typedef struct {
    SpTokenizer *sp;  // exactly one of sp and hf is set
    HfTokenizer *hf;
    int vocab_size;
    int bos_id, eos_id;  // -1 when the tokenizer has none (json: bos_token/eos_token of tokenizer_config.json)
    int image_id;        // the "<image>" token, -1 when there is none
    char *path;
} Tokenizer;

// The tokenizer file of a model folder: DIR/tokenizer.model when it exists, else DIR/tokenizer.json; NULL when
// neither does. Malloc'd.
char *tokenizer_find(const char *dir);
// Loads a tokenizer.model or a tokenizer.json (told apart by the content: a JSON object is a tokenizer.json) and,
// for a tokenizer.json, the tokenizer_config.json beside it when there is one. Dies naming the file on bad input.
Tokenizer *tokenizer_load(const char *path);
void tokenizer_free(Tokenizer *t);

// Encodes text[0..len) with TOK_* flags; *ids and, if not NULL, *spans ((n, 2): the bytes of text each token came
// from; added BOS/EOS tokens get empty ranges at 0 and len) are malloc'd. Returns the count.
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int flags, int **ids, int **spans);
// Decodes as the HF tokenizer of the kind does (skip_special: skip_special_tokens). Ids must be in [0, vocab_size).
char *tokenizer_decode(const Tokenizer *t, const int *ids, int n, int skip_special, size_t *out_len);
// The id of a token written as the tokenizer spells it (an added or special token's text, a piece), -1 if none.
int tokenizer_token_id(const Tokenizer *t, const char *token);
