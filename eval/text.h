// Text helpers for the rule-based scorers: ASCII lowercasing, word tokenization and an English
// singularizer for object nouns.
//
// Tokenization (text_words): words are runs of ASCII letters and digits; bytes >= 0x80 count as letters so
// UTF-8 text stays inside its word; a hyphen between two word characters joins ("t-shirt", "hot-dog" stay
// one word, as nltk.word_tokenize keeps them). Everything else separates words, apostrophes included
// ("dog's" -> "dog", "s"). Words are lowercased.
//
// Singularizer (text_singular): rules, not a dictionary; aimed at the nouns object-hallucination scorers
// look for (COCO's 80 classes and their synonyms) and checked against the pair list in tests/test_eval.c.
// In order:
//   1. words shorter than 3 letters, and invariant words ending in s (is, this, gas, bus, news, series,
//      species, and plural-only nouns: scissors, pants, jeans, sunglasses, ...) stay as they are;
//   2. irregular whole words: people, men, women, children, mice, geese, feet, teeth, oxen, knives, wives,
//      lives, leaves, loaves, thieves, hooves, scarves, cacti, fungi, buses, lenses, tomatoes, potatoes,
//      skis, taxis, menus, zebus, ...;
//   3. irregular endings of compounds: -people (townspeople), -children (grandchildren), -women, -men
//      (policemen, snowmen; not specimen, omen, abdomen, ramen, ...), -knives (pocketknives), -wives,
//      -buses (minibuses);
//   4. -ies: four-letter words (ties, pies) and a list of -ie nouns (movies, cookies, collies, doggies,
//      magpies, ...) drop the s; others -ies -> -y (puppies, cherries, skies);
//   5. -lves -> -lf (shelves, calves, wolves), except the verbs in -olves and valves/salves; other -ves
//      just drop the s (olives, gloves, stoves);
//   6. -es after a sibilant: -sses, -shes, -ches, -xes, -zzes drop "es" (glasses, dishes, benches, boxes),
//      except -che nouns (niches, moustaches, headaches); other -ses and -zes drop "s" (horses, vases,
//      prizes); -oes drops "es" for a list (tomatoes, heroes, mangoes, volcanoes) and "s" otherwise
//      (shoes, canoes, toes);
//   7. a final s is dropped unless the word ends in -ss (glass, grass), -us (cactus, octopus; menus, zebus,
//      gurus are plurals from step 2), or is an -is word (tennis, iris, and any -sis, -itis, -polis);
//      other -is words are plurals (skis, taxis, kiwis).
// Not covered: Latin/Greek plurals beyond cacti/fungi/octopi (criteria, phenomena, indices), -ese/-eaux,
// plural-only words outside the list, and words that are only verbs (they are singularized like nouns,
// which is harmless for object matching).
#pragma once
#include <stddef.h>

typedef struct {
    char **w;
    int n, cap;
} Words;

void words_init(Words *ws);
void words_free(Words *ws);
void words_push(Words *ws, const char *s, size_t len);  // copies s[0..len)

void text_lower(char *s);  // ASCII letters only, in place
// Appends the lowercase words of s to out (see the rules above).
void text_words(const char *s, Words *out);
// The same words as written (case kept), for scorers whose vocabulary is case-sensitive (AMBER's).
void text_tokens(const char *s, Words *out);
// The singular of a lowercase word, as a fresh string.
char *text_singular(const char *word);
