// UTF-8 and the bits of Unicode the tokenizers need: code point decode/encode, Python-compatible replacement of
// invalid UTF-8, letter/number classes (the regex module's \p{L} and \p{N}), Python's str.isspace() set,
// lowercase (str.lower()) and NFC; the classes of the Oniguruma regex engine inside Hugging Face's tokenizers
// library. The tables are generated (tests/ref/make_unicode_tables.py).
#pragma once
#include <stddef.h>
#include <stdint.h>

// Decodes one code point from s[0..n). Returns the bytes consumed (>= 1 when n > 0, 0 when n == 0).
// An ill-formed sequence gives *cp = 0xFFFD and consumes its maximal well-formed prefix (at least 1 byte),
// which is how Python's bytes.decode("utf-8", errors="replace") and the Unicode standard count replacements.
int utf8_decode(const char *s, size_t n, uint32_t *cp);
// Writes cp as UTF-8 into out (4 bytes room); returns the length.
int utf8_encode(uint32_t cp, char *out);
// 1 if s[0..n) is well-formed UTF-8.
int utf8_valid(const char *s, size_t n);

// A growable byte buffer (NUL-terminated at all times).
typedef struct { char *data; size_t len, cap; } StrBuf;
void strbuf_put(StrBuf *b, const void *p, size_t n);
void strbuf_putc(StrBuf *b, char c);
void strbuf_put_cp(StrBuf *b, uint32_t cp);
void strbuf_free(StrBuf *b);

// Copies s[0..n) into b with every ill-formed UTF-8 subsequence replaced by U+FFFD (Python errors="replace").
void utf8_sanitize(StrBuf *b, const char *s, size_t n);

int uni_is_letter(uint32_t cp);   // \p{L}
int uni_is_number(uint32_t cp);   // \p{N}
int uni_is_space(uint32_t cp);    // Python str.isspace() (what re's \s matches in a str)
// The tokenizers library's regex classes (its Oniguruma): \s is the Unicode White_Space property (also Rust's
// char::is_whitespace; unlike str.isspace() it leaves out U+001C..U+001F), and \p{L} / \p{N} are the ones above
// minus the letters and numbers that Unicode versions newer than Oniguruma's assigned.
int uni_is_white_space(uint32_t cp);
int uni_is_letter_onig(uint32_t cp);
int uni_is_number_onig(uint32_t cp);
uint32_t uni_lower1(uint32_t cp); // one-to-one part of str.lower(); U+0130 and final sigma are the caller's
int uni_is_cased(uint32_t cp);           // for the final-sigma rule of str.lower()
int uni_is_case_ignorable(uint32_t cp);
// NFC (unicodedata.normalize("NFC")): decompose, order combining marks, compose. out needs room for 4 * n
// code points (the decomposition); returns the length of the result.
int uni_nfc(const uint32_t *in, int n, uint32_t *out);
int uni_ccc(uint32_t cp);  // canonical combining class
// 1 when NFC can never join cp to the text before it: cp and the first code point of its decomposition are starters
// (class 0) that are not the second half of any composition. Text cut right before such a code point normalizes
// piece by piece to the same result as whole, which lets a normalizer keep track of where each output came from.
int uni_nfc_boundary(uint32_t cp);
// Canonical composition of a + b (primary composites and Hangul); 0 if they do not compose.
uint32_t uni_compose(uint32_t a, uint32_t b);
// ftfy's fix_character_width (U+3000 and the half/fullwidth forms) and fix_latin_ligatures maps:
// number of code points written (<= 3), or -1 when cp is not in the map.
int uni_ftfy_width(uint32_t cp, uint32_t out[3]);
int uni_ftfy_ligature(uint32_t cp, uint32_t out[3]);
