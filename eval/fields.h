// Extra fields of question records, for breakdowns (`vlm eval pope|qa --by FIELD`): the synthetic world's
// POPE and QA records carry e.g. "difficulty", "atypical", "negative", "type", "prior_answer", and a
// breakdown reports a metric per value of one of them.
#pragma once

// The value of `field` in every record of a JSON Lines file, as text: strings as they are, true/false,
// numbers as %g, "none" where the record lacks the field (or has null). Dies naming the file when the
// file has a number of records other than n (the scorer read n questions from it) or a value is an
// object or array. A field "a+b" (any number of '+') gives each record's values of a and b joined by '+',
// so a breakdown can cross two fields (e.g. "type+n_objects": "color+3"). Returns n malloc'd strings.
char **fields_read(const char *path, const char *field, int n);
void fields_free(char **values, int n);

// The distinct values in order of first appearance: *names gets n_groups malloc'd strings (free them with
// fields_free), group_of[i] the group of record i. Returns n_groups.
int fields_groups(char *const *values, int n, char ***names, int *group_of);
