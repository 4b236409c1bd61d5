#!/usr/bin/env python3
"""Reference token ids for the C tokenizers and chat templates (tests/test_tokenizer.c, tests/test_chat.c).

Writes tests/fixtures/tokenizers/{sp,clip,chat}.jsonl. Run from the repository root:

    python3 tests/ref/make_tokenizer_fixtures.py [--data ../shared/data]

Needs: sentencepiece, protobuf, tokenizers, transformers, jinja2, regex, ftfy (no torch).

References, and why these and not others:
- LLaMA SentencePiece ("sp" column): the `sentencepiece` package's encode() on the raw text (no special-token
  parsing, no BOS). This is the ground truth the C encoder must match id for id.
- LLaVA-1.5 Hugging Face tokenizer ("hf" columns): llava-hf/llava-1.5-7b-hf ships a *legacy* tokenizer.json:
  normalizer = Prepend("▁") + Replace(" ", "▁") applied to every text segment between added tokens, BPE with
  byte fallback whose merges are ordered by piece score, added tokens <unk> <s> </s> <image>=32000 <pad>=32001
  (not normalized). The hub files cannot be downloaded here, so the same tokenizer is rebuilt from the .model with
  the `tokenizers` library. (transformers 5's own LlamaTokenizer built from a .model file orders merges by piece
  id instead of score and so splits whitespace runs differently from sentencepiece, e.g. "a  world"; it is not
  what llava-hf ships.) The rebuilt tokenizer reproduces the ids transformers' own LLaVA processor test expects
  for "USER: <image>\\nWhat is shown in this image? ASSISTANT:" (checked below).
- CLIP ("clip.jsonl"): the openai/CLIP SimpleTokenizer algorithm (ftfy + double html unescape + whitespace
  collapse + lowercase, the split regex, BPE by merge rank with </w>), re-implemented here from its description,
  with `clip.tokenize(truncate=True)` semantics for the 77-token context. Cross-checked against transformers'
  CLIPTokenizer built from a vocab.json/merges.txt derived from the same .gz (they differ only where ftfy or html
  unescaping changes the text, which the fast tokenizer does not do; those cases are counted and printed).
- Chat templates ("chat.jsonl"): vicuna_v1 rendered as haotian-liu/LLaVA llava/conversation.py does
  (SeparatorStyle.TWO, sep " ", sep2 "</s>"; an empty system is no system line, vlm.c's choice), tokenized with
  the llava-hf tokenizer; the response mask is the labels LLaVA's preprocess_v1 computes (llava_v1_labels). llava_hf rendered by transformers'
  apply_chat_template with llava-hf's chat_template.json, the way S-VCO calls it for LLaVA-1.5
  (s-vco/s-vco chat_template_monkey_patch.py + data_collator.py): the template's generation ranges give the
  assistant mask via char_to_token, the text is tokenized with add_special_tokens=True and add_eos_token=True
  (BOS and EOS), and the EOS is forced into the mask.
"""
import argparse
import gzip
import html
import json
import os
import random
import re
import sys
import types

import ftfy
import regex
import sentencepiece as spm
from transformers import CLIPTokenizer
from transformers.utils.chat_template_utils import _compile_jinja_template, _render_with_assistant_indices

from chat_ref import LLAVA_HF_CHAT_TEMPLATE, assistant_mask, llava_hf_tokenizer, svco_messages

OUT_DIR = "tests/fixtures/tokenizers"

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")

# -------------------------------------------------------------------------------------------------------------
# Test strings

def sp_strings(rng):
    s = [
        "", " ", "  ", "   ", "\n", "\n\n", "\t", " \t ", "\r\n", "a", "A", "I", "Hello world", "hello world",
        " hello world", "hello world ", "  hello  world  ", "Hello, world!", "Hello,world!", "The quick brown fox "
        "jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK", "It's a dog's life; isn't it?",
        "don't won't can't I'm you're we've they'll he'd", "a\tb\tc", "line one\nline two\nline three",
        "trailing newline\n", "\nleading newline", "tabs\t\tand  spaces", "   leading spaces", "trailing spaces   ",
        "1234567890", "3.14159", "12,345.67", "2024-05-19", "call 555-0199 now", "x = 42; y = x * 3.5",
        "0", "00", "000000", "a1b2c3", "v1.5", "1st 2nd 3rd 4th", "$100 €50 £30 ¥2000", "100%", "#hashtag @mention",
        "https://github.com/haotian-liu/LLaVA", "user@example.com", "C:\\Users\\test\\file.txt", "/usr/local/bin",
        "def f(x):\n    return x + 1\n", "    def f():\n        return 1", "int main(void) { return 0; }",
        "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}", "#include <stdio.h>", "if (a && b || !c) x--;",
        "print('hello')", "SELECT * FROM table WHERE id = 1;", "{\"key\": [1, 2, 3]}", "<div class=\"x\">hi</div>",
        "a+b=c", "~!@#$%^&*()_+`-={}[]|\\:;\"'<>,.?/", "....", "!!!???", "---", "***", "___", "  ...  ",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "Antidisestablishmentarianism", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab",
        "zzzzzzzzzz", "xqzvjkwp", "Thisisaverylongwordwithoutanyspacesinsideit",
        "café", "naïve résumé", "Crème brûlée", "Ångström", "Straße", "ÀÉÎÕÜ", "ñandú", "Łódź", "Český Krumlov",
        "Ελληνικά γράμματα", "Русский текст", "Привет, мир!", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "한국어 텍스트",
        "日本語のテキスト", "中文文本测试", "你好，世界！", "東京タワー", "カタカナ", "ひらがな", "漢字かな混じり文",
        "😀", "😀😃😄", "I love 🍕 and 🍣!", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "❤️", "✓ ✗ ★ ☆", "→ ← ↑ ↓", "∑∫∂√∞≠≤≥",
        "½ ¼ ¾", "™ © ®", "“quoted”", "‘single’", "em—dash", "en–dash", "ellipsis…", "non\u00a0breaking",
        "zero\u200bwidth", "\u3000ideographic space", "ﬁne ﬂow", "ＦＵＬＬ ｗｉｄｔｈ", "x\u0301", "e\u0300",
        "\x00", "a\x01b", "\x7f", "\u0085", "\u2028", "\ufeffBOM", "\U0001F600\U0001F601", "\U00010348", "\U0002A6B3",
        "Mixed 日本 text with English", "emoji🙂inside", "ABC123def456", "CamelCaseIdentifier", "snake_case_name",
        "kebab-case-name", "ALLCAPS", "McDonald's", "O'Reilly", "rock'n'roll", "e.g.", "i.e.", "etc.", "Dr. Smith",
        "U.S.A.", "A.I.", "Q&A", "AT&T", "R&D", "naïve café résumé façade", "über", "fiancée",
        "What is shown in this image?", "Describe the image in detail.", "Is there a red cube in the image?",
        "Yes", "No", "yes", "no", "There are 3 red circles and 2 blue squares.",
        "USER: <image>\nWhat is shown in this image? ASSISTANT:",
        "USER: <image>\nWhat's the content of the image?\nASSISTANT:",
        "<image>", "<image><image>", "<image>\n", " <image> ", "a<image>b", "x<image>", "<image>x", "<pad>",
        "<s>", "</s>", "<unk>", "a</s>b <s> c", "text</s>", "<s>text", "<image >", "< image>", "<IMAGE>", "<0x41>",
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: <image>\nWhat is this? ASSISTANT: A cat.</s>",
        "▁", "▁▁", "a▁b", " ▁ ", "\u2581hello",
    ]
    # Random mixes: words, punctuation, digits, unicode, whitespace runs (fixed seed, reproducible).
    words = ["the", "a", "red", "blue", "green", "circle", "square", "triangle", "star", "left", "right", "of",
             "image", "shows", "two", "three", "is", "there", "yes", "no", "object", "background", "color", "above",
             "below", "between", "Counting", "Position", "What", "How", "many", "?", ",", ".", "!", "'s", "42", "7",
             "café", "日本", "😀", "Ωmega", "naïve", "x_y", "(a)", "[b]", "{c}", "--", "...", "\"q\""]
    spaces = [" ", " ", " ", "  ", "\n", "\t", "   ", " \n ", ""]
    for _ in range(120):
        n = rng.randint(1, 14)
        t = ""
        if rng.random() < 0.2: t += rng.choice(spaces)
        for i in range(n):
            t += rng.choice(words)
            if i + 1 < n: t += rng.choice(spaces)
        if rng.random() < 0.2: t += rng.choice(spaces)
        s.append(t)
    # Random code points from several scripts (valid, no surrogates).
    blocks = [(0x20, 0x7e), (0xa0, 0x17f), (0x370, 0x3ff), (0x400, 0x4ff), (0x4e00, 0x9fff), (0x3040, 0x30ff),
              (0xac00, 0xd7a3), (0x1f300, 0x1f6ff), (0x2000, 0x206f)]
    for _ in range(30):
        t = "".join(chr(rng.randint(*rng.choice(blocks))) for _ in range(rng.randint(1, 20)))
        s.append(t)
    return s


def clip_strings(rng, base):
    s = [
        "a photo of a cat", "A photo of a dog.", "a diagram", "", " ", "   ", "\n", "hello world", "Hello World!",
        "  leading and trailing  ", "multiple   spaces\tand\ttabs\nand\nnewlines", "UPPER lower MiXeD",
        "It's the cat's toy, isn't it? We've, they'll, I'm, you'd", "IT'S ALL CAPS'S", "'s 't 're 've 'm 'll 'd",
        "12345", "3.14", "1,000,000", "room 101", "the year 2024", "a1b2", "x²", "½", "Ⅻ", "٣", "१२३",
        "a red circle to the left of a blue square", "two green triangles above a yellow star",
        "the quick brown fox jumps over the lazy dog", "supercalifragilisticexpialidocious", "aaaaaaaaaaaaaaaaaaaaa",
        "hello!!!", "what?!", "e-mail", "state-of-the-art", "#1", "@user", "http://example.com/path?q=1&r=2",
        "a+b=c", "(parenthesized)", "[bracket]", "{brace}", "quotes \"double\" 'single'", "back\\slash",
        "café", "naïve", "résumé", "Crème Brûlée", "ÀÉÎÕÜ", "straße", "Ελληνικά", "ΣΊΣΥΦΟΣ", "Русский", "ПРИВЕТ",
        "日本語", "中文", "한국어", "हिन्दी", "العربية", "עברית", "ภาษาไทย", "😀", "I ❤️ NY", "🍕🍣", "👍🏽",
        "👨‍👩‍👧", "🇺🇸", "∑∞", "→", "™", "…", "—", "«guillemets»",
        "fish &amp; chips", "&lt;b&gt;bold&lt;/b&gt;", "&amp;amp;", "&quot;quoted&quot;", "it&#39;s", "&#x41;&#66;",
        "&nbsp;space", "&copy; 2024", "&unknown;", "& alone", "“curly” ‘quotes’", "ﬁne ﬂow", "ＦＵＬＬ ｗｉｄｔｈ",
        "\u3000ideographic\u3000space", "non\u00a0breaking", "x\u2028y", "<|startoftext|>", "<|endoftext|>",
        "a <|endoftext|> b", "<|STARTOFTEXT|>", "İstanbul", "ΑΒΓ", "ǅ", "K", "Ⅻ",
    ]
    long = ("a very long caption " * 30).strip()
    s += [long, "word " * 80, "x" * 300, "日本語" * 40]
    # Reuse the ASCII-ish and unicode random mixes from the SP set (those without control characters).
    for t in base:
        if t not in s and not any(ord(c) < 32 and c not in "\t\n\r" for c in t) and "\x7f" not in t \
                and "\ufeff" not in t and "\u0085" not in t and "\u200b" not in t:
            s.append(t)
    return s

# -------------------------------------------------------------------------------------------------------------
# LLaMA / llava-hf reference

def make_sp(model_path, strings):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    hf = llava_hf_tokenizer(model_path)  # checks the ids transformers' own LLaVA processor test expects
    specials = ("<s>", "</s>", "<unk>", "<image>", "<pad>")
    rows = []
    for s in strings:
        ids_sp = sp.encode(s)
        ids_hf = hf(s, add_special_tokens=False).input_ids
        ids_bos = hf(s).input_ids
        assert ids_bos == [1] + ids_hf
        if not any(x in s for x in specials):
            assert ids_sp == ids_hf, (s, ids_sp, ids_hf)  # the rebuilt HF tokenizer is sentencepiece on plain text
            if "\u2581" not in s:  # a literal "▁" in the text decodes as a space
                assert sp.decode(ids_sp) == s, (s, sp.decode(ids_sp))
        row = {"text": s}
        if "\x00" in s:  # cJSON strings end at a NUL: give the C tests the exact bytes too
            row["text_hex"] = s.encode("utf-8").hex()
        rows.append({**row, "sp": ids_sp, "hf": ids_hf, "hf_bos": ids_bos,
                     "decoded": hf.decode(ids_bos, skip_special_tokens=True),
                     "decoded_special": hf.decode(ids_bos, skip_special_tokens=False)})
    # Decode-only rows: id lists that are not the encoding of any text (broken UTF-8 byte runs, bare specials).
    for ids in ([243, 162], [243, 162, 155], [29871, 243, 162, 155, 131, 29871], [195, 29871, 3186],
                [1, 2, 32000, 32001, 0], [29871], [259], [13, 13], [30325, 243, 30346], [3, 4, 5, 130]):
        rows.append({"decode_only": True, "hf_bos": ids, "decoded": hf.decode(ids, skip_special_tokens=True),
                     "decoded_special": hf.decode(ids, skip_special_tokens=False)})
    return rows, hf

# -------------------------------------------------------------------------------------------------------------
# CLIP reference: the openai/CLIP SimpleTokenizer algorithm

def bytes_to_unicode():
    # printable bytes keep their code point; the other 68 bytes are moved to 256, 257, ... in byte order
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in keep:
        table[b] = chr(b)
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    order = keep + [b for b in range(256) if b not in keep]
    return table, order


class ClipRef:
    def __init__(self, gz_path):
        lines = gzip.open(gz_path).read().decode("utf-8").split("\n")
        merges = [tuple(l.split()) for l in lines[1:49152 - 256 - 2 + 1]]
        self.byte_enc, order = bytes_to_unicode()
        self.byte_dec = {v: k for k, v in self.byte_enc.items()}
        vocab = [self.byte_enc[b] for b in order]
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.vocab_list = vocab
        self.enc = {v: i for i, v in enumerate(vocab)}
        self.dec = {i: v for v, i in self.enc.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.merges = merges
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                 regex.IGNORECASE)
        self.sot, self.eot = self.enc["<|startoftext|>"], self.enc["<|endoftext|>"]
        assert (self.sot, self.eot, len(vocab)) == (49406, 49407, 49408)

    @staticmethod
    def clean(text):
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return re.sub(r"\s+", " ", text).strip().lower()

    def bpe(self, token):
        if token in ("<|startoftext|>", "<|endoftext|>"):
            return [token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(word[i], word[i + 1]) for i in range(len(word) - 1)]
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1]); i += 2
                else:
                    out.append(word[i]); i += 1
            word = out
        return word

    def encode(self, text):
        ids = []
        for tok in self.pat.findall(self.clean(text)):
            tok = "".join(self.byte_enc[b] for b in tok.encode("utf-8"))
            ids += [self.enc[p] for p in self.bpe(tok)]
        return ids

    def decode(self, ids):
        text = "".join(self.dec[i] for i in ids)
        return bytearray(self.byte_dec[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ")

    def tokenize77(self, text, ctx=77):
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > ctx:
            ids = ids[:ctx]
            ids[-1] = self.eot
        return ids + [0] * (ctx - len(ids))


def make_clip(gz_path, strings):
    ref = ClipRef(gz_path)
    # transformers' CLIPTokenizer built from vocab.json/merges.txt derived from the same file, for a cross-check.
    hf = CLIPTokenizer(vocab=ref.enc, merges=list(ref.merges))
    rows, differ = [], []
    for s in strings:
        ids = ref.encode(s)
        h = hf(s, add_special_tokens=False).input_ids
        if h != ids:
            differ.append(s)
        rows.append({"text": s, "ids": ids, "ctx77": ref.tokenize77(s), "decoded": ref.decode(ids)})
    print(f"clip: {len(rows)} strings; transformers' CLIPTokenizer differs from openai's cleaning on {len(differ)}:"
          f" {[d[:24] for d in differ]}", file=sys.stderr)
    return rows

# -------------------------------------------------------------------------------------------------------------
# Chat templates

def vicuna_v1_render(system, turns, image):
    """llava/conversation.py conv_vicuna_v1.get_prompt(): system + sep, then "ROLE: message" + sep / sep2 per
    message (sep " " after user, "</s>" after assistant), "ROLE:" for an empty (generation) message. The image goes
    in front of the first user message as "<image>\\n". One deviation, vlm.c's (issue 14): an empty system is no
    system line at all; conversation.py would write " USER: ...", whose leading space tokenizes to a lone "▁"."""
    text = system + " " if system else ""
    for k, (q, a) in enumerate(turns):
        if k == 0 and image:
            q = "<image>\n" + q
        text += "USER: " + q + " "
        text += "ASSISTANT:" if a is None else "ASSISTANT: " + a + "</s>"
    return text


def llava_v1_labels(tok, text):
    """The response mask as LLaVA computes its labels (haotian-liu/LLaVA llava/train/train.py preprocess_v1, the
    branch of a legacy tokenizer such as llava-hf's): the text split into rounds at "</s>", each round into its
    instruction and answer at " ASSISTANT: "; a round's tokens are len(tokenizer(round)) (its BOS standing for the
    "</s>" that ends it), of which the first len(tokenizer(instruction + " ASSISTANT: ")) - 2 are not labels (the
    - 2 drops that BOS and the lone "▁" of the trailing space). So every token after "ASSISTANT:" is a label: the
    answer, its "</s>", and the lone "▁" before an answer that starts with a digit. A generation prompt's open
    round ends the loop (no " ASSISTANT: " in it)."""
    n = len(tok(text).input_ids)
    mask = [0] * n
    cur = 1  # the BOS
    sep = " ASSISTANT: "
    for rou in text.split("</s>"):
        if rou == "":
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        round_len = len(tok(rou).input_ids)
        instruction_len = len(tok(parts[0] + sep).input_ids) - 2
        for t in range(cur + instruction_len, min(cur + round_len, n)):
            mask[t] = 1
        cur += round_len
    return mask


def make_chat(model_path):
    hf = llava_hf_tokenizer(model_path)
    hf_eos = llava_hf_tokenizer(model_path, add_eos=True)
    cases = [
        ("", [("What is shown in this image?", "A red circle on a white background.")], True),
        (None, [("What is shown in this image?", "A red circle on a white background.")], True),
        (None, [("Is there a blue square?", "No.")], True),
        (None, [("Is there a blue square?", "No.")], False),
        (None, [("Describe the image.", "Two  stars,\nthree circles. ")], True),
        (None, [("How many objects?", "3")], True),
        ("", [("How many circles?", "2 circles."), ("And squares?", "10")], True),
        (None, [("What is shown in this image?", None)], True),
        ("", [("What is shown in this image?", None)], True),
        ("", [("What is shown in this image?", None)], False),
        (None, [("What color is the circle?", "Red."), ("And the square?", "Blue."), ("Anything else?", None)], True),
        (None, [("What color is the circle?", "Red."), ("And the square?", "Blue.")], True),
        (None, [("What color is the circle?", "Red."), ("And the square?", "Blue.")], False),
        ("You are a helpful assistant.", [("日本語で答えて。", "はい、わかりました 😀")], True),
        (None, [("Answer:", "")], True),
    ]
    rows = []
    for system, turns, image in cases:
        sys_text = VICUNA_SYSTEM if system is None else system
        # vicuna_v1 (original LLaVA-1.5 training/eval template)
        text = vicuna_v1_render(sys_text, turns, image)
        enc = hf(text)
        rows.append({"template": "vicuna_v1", "system": system, "turns": [list(t) for t in turns], "image": image,
                     "text": text, "ids": enc.input_ids, "mask": llava_v1_labels(hf, text)})
        # llava_hf (the llava-hf chat_template.json, as S-VCO uses it)
        gen = turns[-1][1] is None
        # s-vco chat_template_monkey_patch.py: render with the assistant (generation) character ranges, then
        # tokenize with add_special_tokens=True (so BOS, and EOS from add_eos_token=True, are added), and mark
        # tokens char_to_token(start) .. char_to_token(end - 1) of each range; the collator then forces the
        # last token (the EOS) into the mask. Generation prompts use the plain tokenizer (BOS only).
        text, gen_idx = _render_with_assistant_indices(_compile_jinja_template(LLAVA_HF_CHAT_TEMPLATE),
                                                       svco_messages(system, turns, image), None, None, gen,
                                                       **hf.special_tokens_map)
        enc = (hf if gen else hf_eos)(text, add_special_tokens=True)
        ids, mask = enc.input_ids, assistant_mask(enc, gen_idx)
        if not gen:
            mask[-1] = 1  # s-vco data_collator.py: "include the last token in labels" (the EOS)
        rows.append({"template": "llava_hf", "system": system if system else "", "turns": [list(t) for t in turns],
                     "image": image, "text": text, "ids": ids, "mask": mask})
    return rows

# -------------------------------------------------------------------------------------------------------------

def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(rows)} rows, {os.path.getsize(path)} bytes", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    model = os.path.join(args.data, "tokenizers/llama2_tokenizer.model")
    gz = os.path.join(args.data, "tokenizers/clip_bpe_simple_vocab_16e6.txt.gz")
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = random.Random(1234)
    strings = sp_strings(rng)
    sp_rows, _ = make_sp(model, strings)
    write_jsonl(os.path.join(OUT_DIR, "sp.jsonl"), sp_rows)
    write_jsonl(os.path.join(OUT_DIR, "clip.jsonl"), make_clip(gz, clip_strings(rng, strings)))
    write_jsonl(os.path.join(OUT_DIR, "chat.jsonl"), make_chat(model))


if __name__ == "__main__":
    main()
