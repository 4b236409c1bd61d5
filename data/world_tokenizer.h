// The synthetic world's own tokenizer: `vlm data synth` trains a SentencePiece BPE (data/tokenizer_train.h) on
// every text it wrote, so the miniature study's decoder classifies over a few hundred pieces instead of LLaMA's
// 32,000, and the model reads it through the same tokenizer.model path as a real checkpoint.
//
// The corpus is read back from the files in the folder, not from a word list, so it follows the world's content
// as it changes: every *.json and *.jsonl file at the top of the folder, and in them every string under a key
// the model reads or writes (prompt, instruction_prompt, question, text, system_prompt; response, answer,
// caption, chosen_response, rejected_response, chosen, rejected, label). Each prompt is also rendered as a
// generation prompt with an image in both chat templates (vicuna_v1, llava_hf), because the word right after
// "<image>\n" has no "▁" in front; the templates' fixed text, "Describe the image.", the digits and the option
// letters "(a)" "(b)" are always in. Writes DIR/tokenizer.model and adds to DIR/world.json: "tokenizer"
// (the file name), "tokenizer_pieces" (n), "image_token_index" (n: LLaVA's <image> comes right after the pieces)
// and "vocab_size" (n + 2 for <image> and <pad>, rounded up to a multiple of 64, as LLaVA pads 32002 to 32064).
#pragma once

// Dies naming the file on a read or parse error, or when the folder holds no text at all.
void world_tokenizer_write(const char *dir, int quiet);
