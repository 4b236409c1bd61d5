// The pair rules of the preference-data builders (`vlm data seva|clipdpo`), apart from the models that
// produce their inputs, so they can be tested on their own.
//   SeVa (research/methods.md §3.2): the answer on the original image is chosen, the answer on the
//     augmented image rejected. As released (Kevinz-code/SeVa data/step3/make_pair_ocrvqa.py l.24-30, the same
//     lines in make_pair_textvqa.py): a pair is dropped when the two raw answers are the same string (the
//     generation's decoded text, "</s>" included), and only then is each answer cleaned by deleting every
//     "</s>" and every "\n" (nothing else: no trimming, no space in place of a newline). So two answers that
//     differ only by a newline or by where generation stopped make a pair, as in SeVa.
//   CLIP-DPO (§2.2): among a prompt's candidates, the highest CLIPScore is chosen and the lowest rejected,
//     kept only when the gap is at least min_gap (2 on the x100 scale) and the two lengths are not too
//     different (longer / shorter in words <= max_length_ratio).
#pragma once

// SeVa's cleaning, in place: every "</s>" and every "\n" deleted (make_pair_*.py l.29-30). Returns s.
char *seva_clean_answer(char *s);
// 1 when the two raw answers make a SeVa pair: different strings (make_pair_*.py l.24, before the cleaning).
int seva_keep(const char *raw_chosen, const char *raw_rejected);
// CLIP-DPO candidates (vlm.c's cleaning, for its word counts and scores): "</s>" removed, newlines turned into
// spaces, ends trimmed, in place. Returns s.
char *pref_clean_answer(char *s);
// Words separated by white space.
int pref_word_count(const char *s);
// Picks chosen and rejected among n candidates with CLIP scores and word counts; candidates with
// score < min_score do not take part. Returns 1 with *chosen, *rejected set, or 0 when no pair passes
// (fewer than two candidates, gap below min_gap, or length ratio above max_length_ratio).
int clipdpo_pick(const double *score, const int *words, int n, double min_score, double min_gap, double max_length_ratio,
                 int *chosen, int *rejected);
