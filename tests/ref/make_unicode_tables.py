#!/usr/bin/env python3
"""Generates data/unicode_tables.c: the Unicode data the CLIP tokenizer's text cleaning and split regex need.

Run from the repository root: python3 tests/ref/make_unicode_tables.py   (needs `regex`, `ftfy` and `tokenizers`)

The tables are computed from the same libraries the CLIP reference (tests/ref/make_tokenizer_fixtures.py, after
openai/CLIP simple_tokenizer.py) uses, so the C tokenizer classifies and maps characters as they do:
- letter / number ranges: the `regex` module's \\p{L} and \\p{N};
- lowercase: Python's str.lower() where it maps one code point to one code point (U+0130 and the final-sigma
  rule, the only other cases that matter, are handled in code);
- NFC: the full canonical decomposition (NFD) of each code point where it differs, the canonical combining
  class of every non-starter, and the canonical compositions of two code points (primary composites, exclusions
  left out); Hangul syllables are decomposed and composed in code;
- ftfy's fix_character_width map (U+3000 and U+FF01..U+FFEF -> NFKC) and fix_latin_ligatures map;
- for Hugging Face tokenizer.json pre-tokenizers (data/tokenizer_hf.c): the code points the `regex` module calls
  \\p{L} or \\p{N} but the Oniguruma inside the `tokenizers` library does not (it knows an older Unicode), asked of
  the library itself, and the code points that are the second half of a canonical composition (where NFC may
  join a character to the one before it).
"""
import sys
import unicodedata

import ftfy.chardata as fcd
import regex
import tokenizers
from tokenizers import Regex, pre_tokenizers

OUT = "data/unicode_tables.c"
MAX_CP = 0x110000


def ranges(pred):
    out, start = [], None
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF:
            ok = False
        else:
            ok = pred(c)
        if ok and start is None:
            start = c
        if not ok and start is not None:
            out.append((start, c - 1))
            start = None
    if start is not None:
        out.append((start, MAX_CP - 1))
    return out


def emit_ranges(f, name, rs):
    f.write(f"const uint32_t {name}[][2] = {{\n")
    for i in range(0, len(rs), 6):
        f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in rs[i:i + 6]) + "\n")
    f.write("};\n")
    f.write(f"const int {name}_n = {len(rs)};\n\n")


def emit_map1(f, name, pairs):
    f.write(f"const uint32_t {name}[][2] = {{\n")
    for i in range(0, len(pairs), 6):
        f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in pairs[i:i + 6]) + "\n")
    f.write("};\n")
    f.write(f"const int {name}_n = {len(pairs)};\n\n")


def emit_mapn(f, name, items, width=3):
    # (code point, up to `width` replacement code points; 0 ends a shorter replacement, an empty one deletes)
    f.write(f"const uint32_t {name}[][{width + 1}] = {{\n")
    for cp, rep in items:
        assert len(rep) <= width, (hex(cp), rep)
        vals = [cp] + [ord(x) for x in rep] + [0] * (width - len(rep))
        f.write("    {" + ", ".join(f"0x{v:X}" for v in vals) + "},\n")
    f.write("};\n")
    f.write(f"const int {name}_n = {len(items)};\n\n")


def onig_class(pattern):
    """The code points `pattern` (one character class) matches in the tokenizers library's Oniguruma."""
    cps = [c for c in range(MAX_CP) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(map(chr, cps))
    kept = pre_tokenizers.Split(Regex(pattern), behavior="removed").pre_tokenize_str(text)
    unmatched = set()
    for _, (a, b) in kept:  # offsets count code points for a Python str
        unmatched.update(cps[a:b])
    return set(cps) - unmatched


def main():
    re_l, re_n = regex.compile(r"\p{L}"), regex.compile(r"\p{N}")
    letters = ranges(lambda c: re_l.match(chr(c)) is not None)
    # For str.lower()'s final-sigma rule: Cased (approximated by "has a case mapping or is upper/lower/title")
    # and Case_Ignorable (Mn, Me, Cf, Lm, Sk and the word-internal punctuation of Word_Break).
    cased = ranges(lambda c: chr(c).lower() != chr(c) or chr(c).upper() != chr(c) or chr(c).islower()
                   or chr(c).isupper() or chr(c).istitle())
    mid = {0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55,
           0xFF07, 0xFF0E, 0xFF1A}
    ignorable = ranges(lambda c: c in mid or unicodedata.category(chr(c)) in ("Mn", "Me", "Cf", "Lm", "Sk"))
    numbers = ranges(lambda c: re_n.match(chr(c)) is not None)
    lower = []
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF:
            continue
        lo = chr(c).lower()
        if len(lo) == 1 and ord(lo) != c:
            lower.append((c, ord(lo)))
    nfd = []
    compose = []
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF or 0xAC00 <= c <= 0xD7A3:
            continue
        ch = chr(c)
        d = unicodedata.normalize("NFD", ch)
        if d != ch:
            nfd.append((c, d))
        dec = unicodedata.decomposition(ch)
        if dec and not dec.startswith("<"):
            parts = [int(x, 16) for x in dec.split()]
            if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == ch:
                compose.append((parts[0], parts[1], c))
    ccc = []  # runs of equal non-zero canonical combining class: (lo, hi, class)
    for c in range(MAX_CP):
        k = unicodedata.combining(chr(c)) if not 0xD800 <= c <= 0xDFFF else 0
        if k and ccc and ccc[-1][1] == c - 1 and ccc[-1][2] == k:
            ccc[-1] = (ccc[-1][0], c, k)
        elif k:
            ccc.append((c, c, k))
    compose.sort()
    second = sorted({b for _, b, _ in compose})
    # Oniguruma's classes must be subsets of the regex module's (a newer Unicode only adds letters/numbers)
    onig_l, onig_n = onig_class(r"\p{L}"), onig_class(r"\p{N}")
    not_l = {c for a, b in letters for c in range(a, b + 1)} - onig_l
    not_n = {c for a, b in numbers for c in range(a, b + 1)} - onig_n
    assert all(re_l.match(chr(c)) for c in onig_l) and all(re_n.match(chr(c)) for c in onig_n)
    onig_not_letters = ranges(lambda c: c in not_l)
    onig_not_numbers = ranges(lambda c: c in not_n)
    width = sorted(fcd.WIDTH_MAP.items())
    lig = sorted(fcd.LIGATURES.items())
    with open(OUT, "w") as f:
        f.write("// Generated by tests/ref/make_unicode_tables.py from Python's unicodedata "
                f"(Unicode {unicodedata.unidata_version}), the regex module ({regex.__version__}) and ftfy; "
                "do not edit.\n")
        f.write("// Oniguruma's classes: the tokenizers library " + tokenizers.__version__ + ".\n")
        f.write("// Sorted tables, searched by binary search in data/unicode.c.\n")
        f.write("#include <stdint.h>\n\n")
        emit_ranges(f, "unitab_letter_ranges", letters)
        emit_ranges(f, "unitab_number_ranges", numbers)
        emit_ranges(f, "unitab_cased_ranges", cased)
        emit_ranges(f, "unitab_case_ignorable_ranges", ignorable)
        emit_map1(f, "unitab_lower_map", lower)
        emit_mapn(f, "unitab_nfd", nfd, 4)
        f.write("const uint32_t unitab_ccc[][3] = {\n")
        for i in range(0, len(ccc), 4):
            f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, {k}}}," for a, b, k in ccc[i:i + 4]) + "\n")
        f.write("};\n")
        f.write(f"const int unitab_ccc_n = {len(ccc)};\n\n")
        f.write("const uint32_t unitab_nfc_compose[][3] = {\n")
        for i in range(0, len(compose), 4):
            f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for a, b, c in compose[i:i + 4]) + "\n")
        f.write("};\n")
        f.write(f"const int unitab_nfc_compose_n = {len(compose)};\n\n")
        f.write("const uint32_t unitab_nfc_second[] = {\n")
        for i in range(0, len(second), 8):
            f.write("    " + " ".join(f"0x{c:X}," for c in second[i:i + 8]) + "\n")
        f.write("};\n")
        f.write(f"const int unitab_nfc_second_n = {len(second)};\n\n")
        emit_ranges(f, "unitab_onig_not_letter_ranges", onig_not_letters)
        emit_ranges(f, "unitab_onig_not_number_ranges", onig_not_numbers)
        emit_mapn(f, "unitab_ftfy_width", [(c, r) for c, r in width])
        emit_mapn(f, "unitab_ftfy_ligature", [(c, r) for c, r in lig])
    print(f"wrote {OUT}: {len(letters)} letter ranges, {len(numbers)} number ranges, {len(lower)} lowercase, "
          f"{len(nfd)} nfd, {len(ccc)} ccc runs, {len(compose)} compositions ({len(second)} second halves), "
          f"{len(onig_not_letters)}/{len(onig_not_numbers)} ranges not letters/numbers to Oniguruma, {len(width)} width, {len(lig)} ligatures",
          file=sys.stderr)


if __name__ == "__main__":
    main()
