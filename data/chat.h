// LLaVA chat templates: a conversation -> token ids + a per-token response mask (the labels of SFT/DPO/S-VCO).
//
// Templates (rendered text; the tokenizer then splits out <image>, </s>, <|im_end|> and adds BOS where its kind
// does, see data/tokenizer.h; the first three templates go with LLaMA's tokenizer.model, llava_interleave with
// Qwen's tokenizer.json):
//
//   "vicuna_v1"  original LLaVA-1.5 training and evaluation (haotian-liu/LLaVA llava/conversation.py,
//                conv_vicuna_v1: SeparatorStyle.TWO, sep " ", sep2 "</s>"):
//                  {system} USER: <image>\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>
//                and, when the last answer is missing (generation), "... USER: {q} ASSISTANT:".
//                Default system: "A chat between a curious user and an artificial intelligence assistant. The
//                assistant gives helpful, detailed, and polite answers to the user's questions."
//   "llava_hf"   llava-hf/llava-1.5-7b-hf's chat_template.json, as transformers' apply_chat_template renders it
//                (and as S-VCO trains with it, adding EOS):
//                  [{system} ]USER: <image>\n{q1} ASSISTANT: {a1} USER: {q2} ASSISTANT: {a2} </s>
//                No system line by default; generation ends with "ASSISTANT:" (e.g. "USER: <image>\n{q}
//                ASSISTANT:", the prompt of the llava-hf model card).
//   "llava_hf_image_last"   llava_hf with the image after the first user message instead of before it:
//                  USER: {q1}\n<image> ASSISTANT: {a1} ... </s>
//                A causal decoder then reads the question before the image, so each image token can already
//                weigh itself against the question; the miniature study's decoders, trained from scratch,
//                learn to answer existence questions this way and not the other (notes/results/README.md).
//   "llava_interleave"   llava-hf/llava-interleave-qwen-7b-hf (Qwen1.5 LLM), its processor's chat template as
//                transformers' apply_chat_template renders it (see chat.c for the template and where it is from):
//                  [<|im_start|>system \n{system}<|im_end|>]<|im_start|>user <image>\n{q1}<|im_end|>
//                  <|im_start|>assistant \n{a1}<|im_end|><|im_start|>user \n{q2}<|im_end|>...
//                (one line here, no newlines between the turns), each message "<|im_start|>" + role + " ", its
//                images, then "\n" + its text, then "<|im_end|>"; generation ends with "<|im_start|>assistant\n".
//                No system message by default. The answer's generation span is "\n" + answer: <|im_end|> is no
//                label and no EOS is added (S-VCO's DatasetSVCOForLlavaInterleave labels exactly that span).
//
// Response mask: a token is a label when the text it came from overlaps an assistant answer span — the rule of
// transformers' char_to_token-based assistant masks. For llava_hf the span is the answer plus the space after
// it (the generation span of the template); for vicuna_v1 it is the space after "ASSISTANT:", the answer and
// its "</s>", which gives the labels LLaVA's own arithmetic gives (llava/train/train.py preprocess_v1: every
// token after those of "... ASSISTANT:"), so that an answer starting with a digit keeps the lone "▁" piece
// before it as a label. Either way the token holding the space before the answer's first word is a label (it
// is that word's "▁Word" piece). llava_hf adds the EOS (</s>) after the last answer and labels it, as
// s-vco/s-vco data_collator.py does for LLaVA-1.5. Prompt, system, image and BOS tokens are never labels.
//
// System: NULL is the template's own (vicuna_v1: LLaVA's line; the others: none); "" is no system line in
// every template (nothing before "USER:", so no stray "▁" token).
//
// Image: with opt.image the placeholder "<image>\n" goes in front of the first user message ("\n<image>" after it
// for llava_hf_image_last, "<image>" before the "\n" of the text for llava_interleave). A "<image>" already
// written in that message is moved there (removed with the "\n" after it, the message stripped, as LLaVA's
// preprocess_multimodal does; both templates put the image first). The image-free variant (opt.image = 0,
// S-VCO's no-image rows) is the same conversation without the placeholder: nothing else changes (S-VCO renders
// its no-image rows with the same template and no image entry, so "<image>\n" disappears entirely).
// "<image>" anywhere else (later turns, answers) is an error.
// Several images (opt.image = n > 1, LLaVA-NeXT-Interleave's rows, MVC sides with image lists): with exactly n
// "<image>" in the user messages each stays where it is written (any user turn), so image i's features go where
// the user put its placeholder; with none, the n placeholders go in front of the first user message as one image
// does (the chat templates render all of a message's images first); any other count is an error naming both.
// The placeholder is one id (the tokenizer's <image>: 32000 for LLaVA-1.5, 151646 for Interleave) or, with
// n_image_tokens > 1, that many copies (an HF processor's expansion).
//
// Truncation (max_len > 0): tokens are cut from the end, which is allowed only when every cut token is a
// label (answer/end tokens) and at least one label remains; cutting image tokens or any prompt token is an error
// (the row would silently lose its image or question). max_text_len > 0 cuts the same way, before the image is
// expanded, counting the image as one token: S-VCO's collator cuts its rows at 128 such tokens (s-vco/s-vco
// data_collator.py, after forcing the EOS into the labels, so the EOS falls off a long row; an image row keeps
// max_text_len - 1 tokens besides its image, its image-free row max_text_len). Errors come back as a message.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef enum { CHAT_VICUNA_V1 = 0, CHAT_LLAVA_HF = 1, CHAT_LLAVA_HF_IMAGE_LAST = 2, CHAT_LLAVA_INTERLEAVE = 3 } ChatTemplate;

// The names, for messages and help texts.
#define CHAT_TEMPLATE_NAMES "vicuna_v1, llava_hf, llava_hf_image_last or llava_interleave"
// One of CHAT_TEMPLATE_NAMES; -1 if unknown.
int chat_template_from_name(const char *name);
const char *chat_template_name(ChatTemplate t);
extern const char *const CHAT_VICUNA_SYSTEM;
// LLaVA's conv_llava_v1 system line ("curious human"), the one SeVa generates its pairs' answers with (vicuna_v1's
// layout otherwise; SeVa trains with vicuna_v1's own "curious user" line): `vlm sample --preset seva`.
extern const char *const CHAT_LLAVA_V1_SYSTEM;

typedef struct {
    const char *user;       // the user's message (may contain "<image>" to place the image)
    const char *assistant;  // the answer; NULL on the last turn = generation prompt (ends with "ASSISTANT:")
} ChatTurn;

typedef struct {
    ChatTemplate tmpl;
    const char *system;     // NULL: the template's default (vicuna_v1: LLaVA's system line; llava_hf: none); "": none
    int image;              // images: 1 in the first user turn; n > 1 one per "<image>" the user messages hold
                            // (in place), or n in front of the first one when they hold none; 0: the image-free variant
    int n_image_tokens;     // ids per image: 1 (one <image> id) or the number of feature tokens (576 for LLaVA-1.5)
    int max_len;            // 0: no limit
    int max_text_len;       // 0: no limit; else at most this many tokens with the image counted as one
} ChatOptions;

typedef struct {
    int *ids;         // (n)
    uint8_t *mask;    // (n) 1 where the token is a label
    int n;
    int n_labels;     // number of 1s in mask
    int image_start;  // index of the first image id, -1 when there is none
    int n_image;      // image ids in ids (all images)
    char *text;       // the rendered text (before tokenization)
} ChatTokens;

// Renders and tokenizes a conversation. Returns 0, or -1 with a message in err (nothing allocated in out).
int chat_build(const Tokenizer *tok, const ChatOptions *opt, const ChatTurn *turns, int n_turns, ChatTokens *out,
               char *err, size_t errlen);
void chat_tokens_free(ChatTokens *c);
// The conversation's rendered text alone (what chat_build tokenizes; opt->n_image_tokens and max_len play no
// part): a malloc'd string, or NULL with a message in err. The world tokenizer's trainer reads the templates'
// fixed text through it (data/world_tokenizer.c).
char *chat_render(const ChatOptions *opt, const ChatTurn *turns, int n_turns, char *err, size_t errlen);
