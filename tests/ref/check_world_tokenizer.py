#!/usr/bin/env python3
"""Cross-checks the world tokenizer (data/tokenizer_train.c, data/world_tokenizer.c) against the `sentencepiece`
package, and writes the fixture tests/test_tokenizer.c compares the C encoder with.

    python3 tests/ref/check_world_tokenizer.py [--vlm ./vlm] [--world DIR] [--write-fixture]

Needs: sentencepiece, protobuf. Run from the repository root with the binary built.

1. A world: DIR if given (made by `vlm data synth`), else a small one made in a temporary folder. Its
   tokenizer.model must load in sentencepiece as a BPE model with byte fallback, with as many pieces as
   world.json's tokenizer_pieces, and every text the world holds (the prompts also rendered in both chat
   templates, as the trainer counts them) must get the same ids from sentencepiece and from `vlm tokenize`
   (which splits out <image>/</s> as llava-hf's legacy tokenizer does: each segment between special tokens
   encoded on its own), decode back to the text, and need no byte pieces.
2. --write-fixture: a fixed corpus (the texts of a tiny world plus texts the encoder must survive) is written to
   tests/fixtures/tokenizers/world_corpus.jsonl, a model is trained on it with `vlm data tokenizer --texts`,
   and sentencepiece's ids for the corpus and for probe texts with unseen characters go to
   tests/fixtures/tokenizers/world_sp.jsonl. tests/test_tokenizer.c trains on the same corpus in C and must
   get the same number of pieces and the same ids. Rerun it when the trainer changes on purpose.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

PROMPT_KEYS = {"prompt", "instruction_prompt", "question", "text", "system_prompt"}
ANSWER_KEYS = {"response", "answer", "caption", "chosen_response", "rejected_response", "chosen", "rejected", "label"}
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions.")
SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
FIXTURES = "tests/fixtures/tokenizers"


def world_texts(d):
    """Every string the trainer reads from a world folder, prompts rendered as it renders them."""
    texts = []

    def walk(j):
        items = j.items() if isinstance(j, dict) else enumerate(j) if isinstance(j, list) else []
        for k, v in items:
            if isinstance(v, str) and v:
                if k in PROMPT_KEYS:
                    texts.append(v)
                    texts.append(f"{VICUNA_SYSTEM} USER: <image>\n{v} ASSISTANT:")
                    texts.append(f"USER: <image>\n{v} ASSISTANT:")
                elif k in ANSWER_KEYS:
                    texts.append(v)
            elif isinstance(v, (dict, list)):
                walk(v)

    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name.endswith(".jsonl"):
            for line in open(path, encoding="utf-8"):
                if line.strip():
                    walk(json.loads(line))
        elif name.endswith(".json"):
            walk(json.load(open(path, encoding="utf-8")))
    return texts


def legacy_encode(sp, text):
    """llava-hf's legacy tokenizer: special tokens split out, each other segment encoded on its own."""
    n = sp.get_piece_size()
    special_ids = {"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": n, "<pad>": n + 1}
    ids, seg, i = [], 0, 0
    while i < len(text):
        best = max((s for s in SPECIALS if text.startswith(s, i)), key=len, default=None)
        if best is None:
            i += 1
            continue
        if i > seg:
            ids += sp.encode(text[seg:i])
        ids.append(special_ids[best])
        i += len(best)
        seg = i
    if seg < len(text):
        ids += sp.encode(text[seg:])
    return ids


def vlm_encode(vlm, model, texts, raw=False):
    inp = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    cmd = [vlm, "tokenize", "--tokenizer", model] + (["--raw"] if raw else [])
    out = subprocess.run(cmd, input=inp.encode(), capture_output=True, check=True).stdout.decode()
    return [json.loads(line)["ids"] for line in out.splitlines()]


def check_model_proto(path):
    m = sp_pb2.ModelProto()
    m.ParseFromString(open(path, "rb").read())
    assert m.trainer_spec.model_type == sp_pb2.TrainerSpec.BPE, m.trainer_spec.model_type
    assert m.trainer_spec.byte_fallback
    assert (m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id) == (0, 1, 2, -1)
    assert m.normalizer_spec.add_dummy_prefix and not m.normalizer_spec.remove_extra_whitespaces
    assert [p.piece for p in m.pieces[:3]] == ["<unk>", "<s>", "</s>"]
    assert [p.piece for p in m.pieces[3:259]] == [f"<0x{b:02X}>" for b in range(256)]
    return m


def check_world(vlm, d):
    model = os.path.join(d, "tokenizer.model")
    m = check_model_proto(model)
    world = json.load(open(os.path.join(d, "world.json")))
    sp = spm.SentencePieceProcessor(model_file=model)
    n = sp.get_piece_size()
    assert n == len(m.pieces) == world["tokenizer_pieces"] == world["image_token_index"], (n, world)
    assert world["vocab_size"] >= n + 2 and world["vocab_size"] % 64 == 0
    texts = sorted(set(world_texts(d)))
    ours = vlm_encode(vlm, model, texts)
    bad = 0
    byte_ids = set(range(3, 259))
    for t, ids in zip(texts, ours):
        ref = legacy_encode(sp, t)
        if ids != ref:
            bad += 1
            if bad <= 5:
                print(f"MISMATCH {t!r}\n  vlm {ids}\n  sp  {ref}")
        if byte_ids & set(ref):
            bad += 1
            print(f"BYTE PIECES for {t!r}: {[sp.id_to_piece(i) for i in ref]}")
        if "<" not in t and sp.decode(ref) != t:
            bad += 1
            print(f"DECODE {t!r} -> {sp.decode(ref)!r}")
    n_tok = sum(len(i) for i in ours)
    n_chars = sum(len(t) for t in texts)
    print(f"{d}: {n} pieces (vocab_size {world['vocab_size']}); {len(texts)} distinct texts, {n_tok} tokens "
          f"({n_chars / max(n_tok, 1):.1f} characters per token), {bad} problems")
    return bad


PROBES = [  # not in the corpus: unseen characters fall back to bytes, whitespace runs, specials
    "Zebra 42 crossing", "naïve café 日本 🙂", "a  b   c", " leading", "trailing ", "tab\there", "line\nbreak",
    "USER: <image>\nWhat is the colour? ASSISTANT: blue</s>", "<s>yes</s>", "<pad><image>", "?!.,",
    "Is there a red circle in the image?", "",
]


def write_fixture(vlm, tmp):
    d = os.path.join(tmp, "fixture_world")  # small, so the fixture stays small
    subprocess.run([vlm, "data", "synth", "--out", d, "--train", "12", "--eval", "3", "--pairs", "4", "--size", "32",
                    "--quiet"], check=True)
    corpus = sorted(set(t for t in world_texts(d)))
    corpus += ["The quick brown fox.", "USER: <image>\nDescribe the image. ASSISTANT: yes</s>", "(a) 0 1 2 3 4 5 6 7 8 9"]
    os.makedirs(FIXTURES, exist_ok=True)
    cpath = os.path.join(FIXTURES, "world_corpus.jsonl")
    with open(cpath, "w", encoding="utf-8") as f:
        for t in corpus:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tokenizer.model")
        subprocess.run([vlm, "data", "tokenizer", "--texts", cpath, "--out", model], check=True)
        check_model_proto(model)
        sp = spm.SentencePieceProcessor(model_file=model)
        texts = corpus + PROBES
        ours = vlm_encode(vlm, model, texts)
        with open(os.path.join(FIXTURES, "world_sp.jsonl"), "w", encoding="utf-8") as f:
            f.write(json.dumps({"pieces": sp.get_piece_size(), "corpus": len(corpus)}) + "\n")
            bad = 0
            for i, t in enumerate(texts):
                ref = legacy_encode(sp, t)
                if ref != ours[i]:
                    bad += 1
                    print(f"MISMATCH {t!r}\n  vlm {ours[i]}\n  sp  {ref}")
                f.write(json.dumps({"text": t, "ids": ref, "corpus": i < len(corpus)}, ensure_ascii=False) + "\n")
    print(f"{FIXTURES}/world_corpus.jsonl: {len(corpus)} texts; world_sp.jsonl: {len(texts)} texts, "
          f"{sp.get_piece_size()} pieces, {bad} mismatches with vlm tokenize")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vlm", default="./vlm")
    ap.add_argument("--world", help="a vlm data synth folder (default: a small one in a temporary folder)")
    ap.add_argument("--write-fixture", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = a.world
        if not d:
            d = os.path.join(tmp, "world")
            subprocess.run([a.vlm, "data", "synth", "--out", d, "--train", "40", "--eval", "6", "--pairs", "8",
                            "--size", "32", "--quiet"], check=True)
        bad = check_world(a.vlm, d)
        if a.write_fixture:
            bad += write_fixture(a.vlm, tmp)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
