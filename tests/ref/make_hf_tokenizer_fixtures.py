#!/usr/bin/env python3
"""Reference ids for the C reader of Hugging Face tokenizer.json files (data/tokenizer_hf.c, tests/test_tokenizer_hf.c).

Writes tests/fixtures/tokenizers/qwen2.jsonl, tests/fixtures/tokenizers/tiny_tokenizer.json and
tests/fixtures/tokenizers/chat_interleave.jsonl. Run from the repository root:

    python3 tests/ref/make_hf_tokenizer_fixtures.py [--data ../shared/data]

Needs: tokenizers, transformers (no torch).

The tokenizer is ../shared/data/tokenizers/qwen2/tokenizer.json (Qwen's 151,643 byte-level BPE ranks, Qwen2's Split
pattern, NFC, the specials 151643-151646 with LLaVA-Interleave's <image>). Every string is encoded by the `tokenizers`
library (Tokenizer.from_file(...).encode(text).ids) and, as a check that this is what transformers runs, by
transformers' fast tokenizer built from the same file (tokenizer(text)["input_ids"]); the two must agree. Each row:
{"tokenizer": "qwen2", "text", "ids", "decoded" (decode keeping special tokens), "decoded_skip"
(skip_special_tokens=True)}, and for text with a NUL "text_hex" and "decoded_hex" (its UTF-8 bytes).

A second block of rows ({"variant_fields": ...} first, then rows with "tokenizer": "variant") uses a variant of the
same file that
exercises what the shared file does not: Llama-3's pattern (digits in threes), merges written as "a b" strings (the
shared file has [a, b] pairs),
ignore_merges off (every word through the merge loop), a TemplateProcessing post-processor (add_special_tokens adds
tokens around the text), and added tokens with lstrip, rstrip, single_word and normalized. The variant line holds the
fields that replace the file's ("pre_tokenizer", "post_processor", "added_tokens", "model.ignore_merges") and says
that merges are to be written as strings; the C test builds the same variant from the shared file. Rows with
"ids_special" also give the ids with add_special_tokens=True.

tiny_tokenizer.json is a small file of the same layout (the 256 byte symbols, a few merges, two added tokens), small
enough to be the base of the malformed-file tests and the fuzzer's seed; rows with "tokenizer": "tiny" are its ids.

chat_interleave.jsonl: conversations through LLaVA-Interleave's chat template (data/chat.c says where it is from) the
way S-VCO's DatasetSVCOForLlavaInterleave builds them (an optional system message, the user message [text] + [image],
the assistant message; add_generation_prompt when the last answer is missing), rendered by transformers'
_render_with_assistant_indices and tokenized with the Qwen2 file; the mask is char_to_token of each generation range,
as the processor's return_assistant_tokens_mask computes it. Rows as tests/fixtures/tokenizers/chat.jsonl.
"""
import argparse
import copy
import json
import os
import random
import tempfile
import unicodedata

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import _compile_jinja_template, _render_with_assistant_indices

from chat_ref import assistant_mask, svco_messages

OUT = "tests/fixtures/tokenizers/qwen2.jsonl"
TINY = "tests/fixtures/tokenizers/tiny_tokenizer.json"
CHAT_OUT = "tests/fixtures/tokenizers/chat_interleave.jsonl"

INTERLEAVE_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")

# The rendered LLaVA-Interleave prompt (the llava-hf chat template, see data/chat.h) and other chat text.
CHAT = [
    "<|im_start|>user <image>\nWhat is shown in this image?<|im_end|><|im_start|>assistant",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nDescribe it.<|im_end|>\n"
    "<|im_start|>assistant\nA red circle.<|im_end|>\n",
    "<image><image>\nCompare the two images.",
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "< image>", "<image", "<|im_start|><|im_end|>",
    "text<|endoftext|>more", " <image> ", "\n<image>\n", "<|im_end|>\n\n", "<<image>>", "<|im_start|user",
]

BASE = [
    "", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\t", " \t ", "\r\n", "\r\n\r\n", "\r", " \n", "\n ", "a", "A", "I",
    "Hello world", "hello world", " hello world", "hello world ", "  hello  world  ", "Hello, world!", "Hello,world!",
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK",
    "It's a dog's life; isn't it?", "don't won't can't I'm you're we've they'll he'd",
    "DON'T WON'T I'M YOU'RE WE'VE THEY'LL HE'D", "It'S 'Re 'vE 'Ll 'D", "'s", "'", "''", "'''s", "x'", "'x", "' s",
    "l'amour", "rock'n'roll", "O'Neil's", "'ſ 'ſt itſ", "\u017f\u017f", "a'\u212a",
    "a\tb\tc", "line one\nline two\nline three", "trailing newline\n", "\nleading newline", "tabs\t\tand  spaces",
    "   leading spaces", "trailing spaces   ", "a  b", "a   b", "a    b", "a \n b", "a\n\n  b", "a  \n\n  b",
    "word\n", "word \n", "word  \n", "x\r\ny", "x \r\n y", "end.\n\n", "!!!\n", "!!! \n", "? \n\n ",
    "1", "12", "123", "1234", "12345", "1234567890", "3.14159", "12,345.67", "2024-05-19", "call 555-0199 now",
    "x = 42; y = x * 3.5", "v1.2.3", "0x1F", "1e-5", "-7", "+7", "100%", "$9.99", "#1", "a1b2c3", "R2D2",
    "١٢٣", "٣٤ and ۴۵", "一二三", "Ⅻ", "½", "²", "①②", "𝟙𝟚",
    "def f(x):\n    return x + 1\n", "for (int i = 0; i < n; i++) { s += a[i]; }", "if a==b:\n\tpass",
    "{\"key\": [1, 2, 3]}", "<div class=\"x\">hi</div>", "http://example.com/a?b=c&d=e", "user@example.com",
    "C:\\path\\to\\file.txt", "~/.bashrc", "a->b => c", "x**2 + y**2", "----", "====", "...", "…", "—", "--a",
    "((()))", "[1]", "|x|", "@@", "##", "$$", "%%", "^^", "&&", "**", "__init__", "snake_case_name", "CamelCaseName",
    "日本語のテキスト", "中文测试，你好！", "한국어 텍스트", "Привет, мир!", "Γειά σου Κόσμε", "مرحبا بالعالم",
    "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Tiếng Việt có dấu", "Ελληνικά ΣΊΣΥΦΟΣ", "Ärger über Öl",
    "façade naïve café résumé", "ß ẞ ǅ ǆ", "İstanbul ıi", "ﬁne ﬂow", "ＡＢＣ　ｆｕｌｌ", "ｶﾀｶﾅ", "㎏ ㎡",
    "😀", "😀😃", "a😀b", " 😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵🇫🇷", "❤️", "☃", "✓ done", "→ ← ↑", "∀x∃y", "€100", "£5 ¥6",
    "e\u0301", "cafe\u0301", "Cafe\u0301 au lait", "A\u030a", "\u212b", "\u2126", "o\u0308\u0304", "\u1e0a\u0323",
    "d\u0323\u0307", "\u0071\u0307\u0323", "\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8", "n\u0303o",
    "\u0301", "\u0301a", " \u0301", "a\u0300\u0301\u0302", "\u0f73", "\u0958", "\u2000\u2001", "\u00c5\u0301",
    "\u00a0", "a\u00a0b", "a\u2003b", "\u3000x", "a\u200bb", "a\u200db", "\ufeffbom", "a\x1cb", "a \x1c b",
    "\x1f\x1e", "a\x00b", "\x00", "\x7f", "\x85next", "a\u2028b", "a\u2029b", "\u000b\u000c",
    "\U0001F600\U0001F601\U0001F602", "\U00010000", "\U0010FFFD", "\U000E0001", "\ue000 private", "\uffff", "\ufffd",
    "𐐷𐐷", "𠀀𠀁", "ℌ", "ﷺ", "ǈ", "Ǆ", "ᾼ",
    "The image shows a red circle to the left of two blue squares.",
    "Is there a green triangle in the image? Answer yes or no.", "Yes", "No", "yes.", "no.", "Yes, there is.",
    "USER: <image>\nWhat is shown in this image? ASSISTANT:", "A chat between a curious user and an artificial "
    "intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.",
]

VOCAB_PIECES = [
    "the", " the", "image", " shows", " a", " red", " circle", " left", " of", " blue", " squares", ",", " and",
    " 3", " stars", ".", " 日本語", " 😀", "\n", "  ", " xyzzyq", "'s", "'LL", " don't", "1234567", " ٣", " café",
    "e\u0301", "\t", " \r\n", "<image>", "<|im_end|>", "<|im_start|>", "!!", " ?", "\u00a0", " Привет", " Σ", "_x",
    "ﬁ", "１２", "\u3000", "\x1c", " 42", "...", "—", "''",
]


def random_strings(rng, n):
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        out.append("".join(rng.choice(VOCAB_PIECES) for _ in range(k)))
    return out


def long_strings(rng):
    para = " ".join(BASE[20:60])
    return [para, para * 3, "".join(rng.choice("abcdefghij") for _ in range(3000)), "9" * 500, " " * 300 + "x",
            "\n" * 50 + "y", "😀" * 100]


def check_transformers(path, strings, tok):
    """transformers' fast tokenizer from the same file must give the library's ids (and add no BOS/EOS)."""
    fast = PreTrainedTokenizerFast(tokenizer_file=path)
    for s in strings:
        got = fast(s)["input_ids"]
        want = tok.encode(s).ids
        assert got == want, (s, got, want)


def variant_fields(base):
    """The fields of the variant file that differ from the shared one (see the docstring)."""
    added = copy.deepcopy(base["added_tokens"])
    nxt = max(a["id"] for a in added) + 1
    extra = [
        ("<L>", True, False, True, False, False),        # content, lstrip, rstrip, special, normalized, single_word
        ("<R>", False, True, True, False, False),
        ("<LR>", True, True, False, False, False),
        ("word", False, False, False, False, True),
        ("caf\u00e9!", False, False, False, True, False),  # normalized: also matches "cafe\u0301!"
        ("<L", False, False, False, False, False),          # a prefix of "<L>": the longest match wins
    ]
    for content, ls, rs, special, norm, sw in extra:
        added.append({"id": nxt, "content": content, "single_word": sw, "lstrip": ls, "rstrip": rs,
                      "normalized": norm, "special": special})
        nxt += 1
    pre = copy.deepcopy(base["pre_tokenizer"])
    pre["pretokenizers"][0]["pattern"]["Regex"] = LLAMA3_PATTERN
    post = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [151644], "tokens": ["<|im_start|>"]},
                            "<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643], "tokens": ["<|endoftext|>"]}}}]}
    return {"pre_tokenizer": pre, "post_processor": post, "added_tokens": added, "model.ignore_merges": False,
            "merges_as_strings": True}


def make_variant(base, fields):
    v = copy.deepcopy(base)
    for k in ("pre_tokenizer", "post_processor", "added_tokens"):
        v[k] = fields[k]
    v["model"]["ignore_merges"] = fields["model.ignore_merges"]
    v["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in v["model"]["merges"]]
    return v


VARIANT_STRINGS = [
    "1", "12", "123", "1234", "1234567", "12345678901", "v1.2.3 and 2024-05-19", "٣٤٥٦", "x = 1000000;",
    "a <L> b", "a  <L>  b", "a<L>b", "a <R> b", "a  <R>  b", "a <LR> b", "\n<LR>\n", "<L><R><LR>", " <L> <L> ",
    "a word b", "aword b", "a wordy b", "word", "_word_", "word!", "the word<L>", "café! cafe\u0301! CAFÉ!",
    "<L <L> <L", "<R<L>", "<|im_start|>hi<|im_end|>", "<image> here",
    "The quick brown fox jumps over the lazy dog.", "It's THEY'LL don't", "日本語 😀 👨‍👩‍👧‍👦", "  \n\n  x  ",
    "", " ", "hello", "antidisestablishmentarianism", "Supercalifragilisticexpialidocious",
]


def bytes_to_unicode():
    """GPT-2's byte alphabet: printable bytes keep their code point, the others get 256, 257, ..."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def tiny_tokenizer(base):
    """A small byte-level BPE tokenizer.json with the shared file's normalizer, pre-tokenizer and decoder."""
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = ["Ġ t", "h e", "Ġt he", "i n", "in g", "Ġ a", "e r", "Ġ c", "Ġc a", "Ġca t"]
    for m in merges:
        a, b = m.split(" ")
        vocab[a + b] = len(vocab)
    n = len(vocab)
    added = [{"id": n, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True},
             {"id": n + 1, "content": "<image>", "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": base["normalizer"], "pre_tokenizer": base["pre_tokenizer"],
            "post_processor": base["post_processor"], "decoder": base["decoder"],
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


TINY_STRINGS = ["the cat", " the cat", "the cathe", "singing in the rain", "a<image>b", "<|endoftext|>", "", "Café",
                "café", "x  y\n", "😀", "thethe the", "ing", "  the"]


def interleave_chat_rows(fast):
    cases = [
        (None, [("What is shown in this image?", "A red circle on a white background.")], True),
        (None, [("Is there a blue square?", "No.")], True),
        (None, [("Is there a blue square?", "No.")], False),
        ("You are a helpful assistant.", [("Describe the image.", "Two  stars,\nthree circles. ")], True),
        ("You are a helpful assistant.", [("Describe the image.", "Two stars.")], False),
        (None, [("How many objects?", "3")], True),
        (None, [("What is shown in this image?", None)], True),
        (None, [("What is shown in this image?", None)], False),
        ("Answer briefly.", [("What is shown in this image?", None)], True),
        (None, [("What color is the circle?", "Red."), ("And the square?", "Blue."), ("Anything else?", None)], True),
        (None, [("What color is the circle?", "Red."), ("And the square?", "Blue.")], True),
        (None, [("What color is the circle?", "Red."), ("And the square?", "Blue.")], False),
        (None, [("日本語で答えて。", "はい、わかりました 😀")], True),
        (None, [("Answer:", "")], True),
        (None, [("  spaces around  ", " It's  a cat.\n\n")], True),
    ]
    template = _compile_jinja_template(INTERLEAVE_CHAT_TEMPLATE)
    rows = []
    for system, turns, image in cases:
        gen = turns[-1][1] is None
        text, gen_idx = _render_with_assistant_indices(template, svco_messages(system, turns, image), None, None, gen)
        enc = fast(text)
        ids, mask = enc.input_ids, assistant_mask(enc, gen_idx)
        rows.append({"template": "llava_interleave", "system": system if system else "",
                     "turns": [list(t) for t in turns], "image": image, "text": text, "ids": ids, "mask": mask})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("VLM_SHARED_DATA", "../shared/data"))
    args = ap.parse_args()
    path = os.path.join(args.data, "tokenizers/qwen2/tokenizer.json")
    tok = Tokenizer.from_file(path)
    rng = random.Random(20261203)
    strings = CHAT + BASE + random_strings(rng, 200) + long_strings(rng)
    seen, uniq = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    check_transformers(path, uniq, tok)
    rows = []
    for s in uniq:
        ids = tok.encode(s).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        assert dec == unicodedata.normalize("NFC", s), (s, dec)  # NFC'd text round-trips
        row = {"tokenizer": "qwen2", "text": s, "ids": ids, "decoded": dec, "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
        if "\x00" in s:  # a JSON reader in C ends strings at NUL: the exact bytes go as hex too
            row["text_hex"] = s.encode("utf-8").hex()
            row["decoded_hex"] = dec.encode("utf-8").hex()
        rows.append(row)
    base = json.load(open(path, encoding="utf-8"))
    fields = variant_fields(base)
    with tempfile.TemporaryDirectory() as d:
        vpath = os.path.join(d, "tokenizer.json")
        json.dump(make_variant(base, fields), open(vpath, "w", encoding="utf-8"), ensure_ascii=False)
        vt = Tokenizer.from_file(vpath)
        # the library gives added tokens its own ids (a vocabulary entry's, else the next free one): write those
        for a in fields["added_tokens"]:
            a["id"] = vt.token_to_id(a["content"])
        json.dump(make_variant(base, fields), open(vpath, "w", encoding="utf-8"), ensure_ascii=False)
        vt = Tokenizer.from_file(vpath)
        vrows = []
        for s in VARIANT_STRINGS:
            e = vt.encode(s, add_special_tokens=False).ids
            vrows.append({"tokenizer": "variant", "text": s, "ids": e, "ids_special": vt.encode(s).ids,
                          "decoded": vt.decode(e, skip_special_tokens=False),
                          "decoded_skip": vt.decode(vt.encode(s).ids, skip_special_tokens=True)})
    tiny = tiny_tokenizer(base)
    with open(TINY, "w", encoding="utf-8") as f:
        json.dump(tiny, f, ensure_ascii=False, indent=1)
        f.write("\n")
    tt = Tokenizer.from_file(TINY)
    for s in TINY_STRINGS:
        ids = tt.encode(s).ids
        vrows.append({"tokenizer": "tiny", "text": s, "ids": ids, "decoded": tt.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tt.decode(ids, skip_special_tokens=True)})
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.write(json.dumps({"variant_fields": fields}, ensure_ascii=False) + "\n")
        for r in vrows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    crows = interleave_chat_rows(PreTrainedTokenizerFast(tokenizer_file=path))
    with open(CHAT_OUT, "w", encoding="utf-8") as f:
        for r in crows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {CHAT_OUT}: {len(crows)} conversations")
    print(f"wrote {OUT}: {len(rows)} strings, {len(vrows)} on the variant and the tiny file, "
          f"{sum(len(r['ids']) for r in rows)} ids")


if __name__ == "__main__":
    main()
