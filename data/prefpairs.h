// The pair rules of the preference-data builders (`vlm data seva|clipdpo`), apart from the models that
// produce their inputs, so they can be tested on their own.
//   SeVa (research/methods.md §3.2): the answer on the original image is chosen, the answer on the
//     augmented image rejected; pairs whose two answers are the same string (after stripping "</s>" and
//     newlines, as SeVa's step 3 does) are dropped.
//   CLIP-DPO (§2.2): among a prompt's candidates, the highest CLIPScore is chosen and the lowest rejected,
//     kept only when the gap is at least min_gap (2 on the x100 scale) and the two lengths are not too
//     different (longer / shorter in words <= max_length_ratio).
#pragma once

// SeVa's cleaning, in place: "</s>" removed, newlines turned into spaces, ends trimmed. Returns s.
char *pref_clean_answer(char *s);
// 1 when the two (cleaned) answers make a SeVa pair: both non-empty and different.
int seva_keep(const char *chosen, const char *rejected);
// Words separated by white space.
int pref_word_count(const char *s);
// Picks chosen and rejected among n candidates with CLIP scores and word counts; candidates with
// score < min_score do not take part. Returns 1 with *chosen, *rejected set, or 0 when no pair passes
// (fewer than two candidates, gap below min_gap, or length ratio above max_length_ratio).
int clipdpo_pick(const double *score, const int *words, int n, double min_score, double min_gap, double max_length_ratio,
                 int *chosen, int *rejected);
