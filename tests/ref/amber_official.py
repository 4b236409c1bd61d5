"""AMBER's own scorer (junyangwang0410/AMBER:inference.py, commit 534babf) run offline on a response file:
prints and writes its numbers as JSON. tests/fixtures/amber/official.json is its output on the hand-made
files in tests/fixtures/amber/, which tests/test_eval.c (eval_amber_matches_official_scorer) checks
`vlm eval amber` against.

inference.py is run unchanged (its functions called as its __main__ block calls them, so that the counts can
be kept beside the printout). What it imports and cannot have here is stood in for:
  - spacy: spacy.load("en_core_web_lg") cannot be installed here; the stand-in's similarity of two words is
    read from a similarity table (--similar, the format of eval/data/amber_similar.tsv; 1.0 for a word and
    itself, 0.0 for pairs not listed), the same table `vlm eval amber --similar` reads;
  - nltk.pos_tag: the averaged perceptron tagger's data cannot be downloaded here; the stand-in tags every
    token NN, as `vlm eval amber` counts every token whose lemma is an object;
  - nltk.word_tokenize: Punkt's data cannot be downloaded; the stand-in splits sentences after '.', '!' or
    '?' followed by white space and runs NLTK's own Treebank word tokenizer on each.
NLTK's WordNetLemmatizer runs for real, on WordNet 3.0 (NLTK's data, or Debian's wordnet-base as in
tests/ref/make_amber_tables.py). So the check covers AMBER's matching and counting, its metrics and the
lemmas; the POS tagger, Punkt and spaCy's vectors stay outside it (eval/amber.h says what that changes).

    python3 tests/ref/amber_official.py --amber PATH/AMBER [--data DIR] --answers FILE [--similar TSV] [--out JSON]
    python3 tests/ref/amber_official.py --amber PATH/AMBER --fixtures   # rewrites tests/fixtures/amber/official.json
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "amber")
sys.path.insert(0, HERE)


def install_stand_ins(similar_path):
    sims = {}
    if similar_path:
        for line in open(similar_path, encoding="utf-8"):
            if line.startswith("#") or not line.strip():
                continue
            a, b, s = line.rstrip("\n").split("\t")
            sims[(a, b)] = sims[(b, a)] = float(s)

    class Doc:
        def __init__(self, text):
            self.text = text

        def similarity(self, other):
            return 1.0 if self.text == other.text else sims.get((self.text, other.text), 0.0)

    spacy = types.ModuleType("spacy")
    spacy.load = lambda name: Doc
    sys.modules["spacy"] = spacy

    import nltk
    from nltk.tokenize import TreebankWordTokenizer
    treebank = TreebankWordTokenizer()
    nltk.word_tokenize = lambda text: [t for s in re.split(r"(?<=[.!?])\s+", text) for t in treebank.tokenize(s)]
    nltk.pos_tag = lambda tokens: [(t, "NN") for t in tokens]


def parse_printout(text):
    """inference.py's printout: section headers ending in ':' followed by 'Name:\\t value' lines."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9 ]+):\s+(-?[0-9.]+)$", line)
        if m:
            out[section][m.group(1)] = float(m.group(2))
        elif line.endswith(":"):
            section = line[:-1]
            out[section] = {}
    return out


def run(amber, data, answers, similar, wordnet):
    """inference.py's printout and its metrics dict (every count, before the division)."""
    from make_amber_tables import wordnet_source
    wordnet_source(wordnet)
    install_stand_ins(similar)
    path = os.path.join(amber, "inference.py")
    argv = ["inference.py", "--inference_data", answers, "--evaluation_type", "a",
            "--word_association", os.path.join(data, "relation.json"), "--safe_words", os.path.join(data, "safe_words.txt"),
            "--annotation", os.path.join(data, "annotations.json"), "--metrics", os.path.join(amber, "data", "metrics.txt")]
    # the module as it is; what its `if __name__ == "__main__"` block does, done here so that the dict init()
    # returns (which main() fills in place) can be kept
    g = {"__name__": "amber_inference", "__file__": path}
    exec(compile(open(path).read(), path, "exec"), g)
    kept = {}
    init = g["init"]
    g["init"] = lambda: kept.setdefault("metrics", init())
    old, sys.argv = sys.argv, argv
    buf = io.StringIO()
    try:
        g["args"] = g["get_args"]()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            g["main"](g["args"])
    finally:
        sys.argv = old
    return buf.getvalue(), kept["metrics"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amber", required=True, help="a checkout of junyangwang0410/AMBER")
    ap.add_argument("--data", help="the folder of annotations.json, relation.json, safe_words.txt (default: AMBER's data/)")
    ap.add_argument("--answers")
    ap.add_argument("--similar")
    ap.add_argument("--out")
    ap.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 dict files, when NLTK has none")
    ap.add_argument("--fixtures", action="store_true", help="score tests/fixtures/amber and rewrite its official.json")
    args = ap.parse_args()
    if args.fixtures:
        args.data, args.answers = FIX, os.path.join(FIX, "answers.json")
        args.similar, args.out = os.path.join(FIX, "similar.tsv"), os.path.join(FIX, "official.json")
    printed, counts = run(args.amber, args.data or os.path.join(args.amber, "data"), args.answers, args.similar,
                          args.wordnet)
    print(printed)
    if args.out:
        result = parse_printout(printed)
        # the counts without the 0.001 each denominator starts at (data/metrics.txt)
        result["counts"] = {k: round(v) for k, v in counts.items()}
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
