"""AMBER's noun -> object decisions as data, for `vlm eval amber` (eval/amber.h):

  eval/data/amber_nouns.tsv    every word form whose WordNet noun lemma (NLTK's WordNetLemmatizer, as AMBER's
                               inference.py calls it) is one of AMBER's objects (the keys and associated words
                               of data/relation.json): "form<TAB>object"; and every object word whose own lemma
                               is not an object: "form<TAB>-" (it never counts, as in AMBER).
  eval/data/amber_similar.tsv  AMBER's near-synonym decisions: spaCy en_core_web_lg similarity of every pair of
                               object words above 0.5, "word<TAB>word<TAB>similarity" (AMBER counts > 0.8).
                               Written only when spaCy and en_core_web_lg load.

How the forms are found: AMBER keeps a token when its lemma is an object, and NLTK's lemmatizer (WordNet's
morphy) reaches a lemma only through noun.exc or by stripping the suffixes s, ses, ves, xes, zes, ches, shes,
men, ies (repeated while nothing is found). So the candidates are every object word, every noun.exc form, and
every form that up to three inverse suffix rules make from an object word (plus each word capitalized and in
capitals); each candidate is lemmatized by NLTK itself and kept when its lemma is an object.

What could not be run where this was generated (recorded in the header of the table): NLTK's data cannot be
downloaded there, so WordNet 3.0 comes from Debian's wordnet-base and wordnet-sense-index packages (the
dictionary files NLTK's "wordnet" corpus is made of) read by NLTK's own WordNet reader; NLTK's POS tagger
(averaged_perceptron_tagger) and Punkt models are not needed for this table and were not available; spaCy's
en_core_web_lg is not on PyPI, so no similarity table was written.

    apt-get install wordnet-base wordnet-sense-index
    pip install nltk [spacy, and python -m spacy download en_core_web_lg where that works]
    python3 tests/ref/make_amber_tables.py --amber PATH/AMBER [--wordnet /usr/share/wordnet]
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "eval", "data")

# WordNet 3.0's lexicographer files (lexnames(5WN)); NLTK's reader needs the file, Debian does not ship it
LEXNAMES = ["adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
            "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
            "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
            "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
            "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
            "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
            "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
            "verb.stative", "verb.weather", "adj.ppl"]
NOUN_RULES = [("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
              ("men", "man"), ("ies", "y")]  # nltk.corpus.reader.wordnet MORPHOLOGICAL_SUBSTITUTIONS[NOUN]


def wordnet_source(wordnet_dir):
    """Makes NLTK's wordnet corpus loadable; returns a sentence saying where it came from."""
    import nltk
    try:
        nltk.data.find("corpora/wordnet")
        return "NLTK's own wordnet corpus"
    except LookupError:
        pass
    root = tempfile.mkdtemp()
    dst = os.path.join(root, "corpora", "wordnet")
    os.makedirs(dst)
    for name in os.listdir(wordnet_dir):
        if name.split(".")[0] in ("index", "data") or name.endswith(".exc"):
            shutil.copy(os.path.join(wordnet_dir, name), dst)
    if not os.path.exists(os.path.join(dst, "lexnames")):
        with open(os.path.join(dst, "lexnames"), "w") as f:
            cat = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
            f.writelines("%02d\t%s\t%d\n" % (i, n, cat[n.split(".")[0]]) for i, n in enumerate(LEXNAMES))
    nltk.data.path.insert(0, root)
    version = ""
    try:
        version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "wordnet-base"], capture_output=True,
                                 text=True).stdout
    except OSError:
        pass
    return "WordNet 3.0 dictionary files%s (NLTK's wordnet data could not be downloaded)" % (
        " of Debian's wordnet-base " + version if version else "")


def inverse_forms(word, depth):
    forms, frontier = set(), {word}
    for _ in range(depth):
        nxt = set()
        for w in frontier:
            for old, new in NOUN_RULES:
                if w.endswith(new):
                    nxt.add(w[: len(w) - len(new)] + old)
        forms |= nxt
        frontier = nxt
    return forms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amber", required=True, help="a checkout of junyangwang0410/AMBER")
    ap.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 dict files, when NLTK has none")
    args = ap.parse_args()
    import nltk
    from nltk.stem import WordNetLemmatizer

    rel_path = os.path.join(args.amber, "data", "relation.json")
    relation = json.load(open(rel_path, encoding="utf-8"))
    vocab = set(relation) | {w for v in relation.values() for w in v}
    source = wordnet_source(args.wordnet)
    from nltk.corpus import wordnet as wn
    lemmatize = WordNetLemmatizer().lemmatize

    candidates = set()
    for v in vocab:
        for w in (v, v.capitalize(), v.upper()):
            candidates.add(w)
            candidates |= inverse_forms(w, 3)
    candidates |= set(wn._exception_map["n"])  # noun.exc's forms
    rows = {}
    for c in sorted(candidates):
        lemma = lemmatize(c)
        if lemma in vocab:
            rows[c] = lemma
    for v in vocab:
        rows.setdefault(v, "-")
    sha = hashlib.sha256(open(rel_path, "rb").read()).hexdigest()
    commit = subprocess.run(["git", "-C", args.amber, "log", "-1", "--format=%h"], capture_output=True, text=True).stdout.strip()
    out = os.path.join(DATA, "amber_nouns.tsv")
    with open(out, "w", encoding="utf-8") as f:
        f.write("# AMBER's noun -> object table for `vlm eval amber`, written by tests/ref/make_amber_tables.py.\n")
        f.write("# form<TAB>object: a token written so counts as that object; object \"-\": never counts.\n")
        f.write("# objects: the %d words of AMBER's data/relation.json (%ssha256 %s)\n" % (
            len(vocab), "commit %s, " % commit if commit else "", sha))
        f.write("# lemmas: NLTK %s WordNetLemmatizer on %s\n" % (nltk.__version__, source))
        f.write("# not in this table: NLTK's POS tag (AMBER keeps NN* tokens only) and Punkt sentence splits\n")
        for form in sorted(rows):
            f.write("%s\t%s\n" % (form, rows[form]))
    print("%s: %d forms (%d objects, %d forms that are no object)" % (
        out, len(rows), len(vocab), sum(1 for r in rows.values() if r == "-")))

    try:
        import spacy
        nlp = spacy.load("en_core_web_lg")
    except Exception as e:  # noqa: BLE001 -- any failure means: no similarity table
        print("no similarity table: spaCy's en_core_web_lg does not load here (%s: %s)" % (type(e).__name__, e))
        return
    words = sorted(vocab)
    docs = {w: nlp(w) for w in words}
    out = os.path.join(DATA, "amber_similar.tsv")
    with open(out, "w", encoding="utf-8") as f:
        f.write("# spaCy %s en_core_web_lg similarity of AMBER's object words, pairs above 0.5\n" % spacy.__version__)
        for i, a in enumerate(words):
            for b in words[i + 1:]:
                s = docs[a].similarity(docs[b])
                if s > 0.5:
                    f.write("%s\t%s\t%r\n" % (a, b, float(s)))
    print("wrote", out)


if __name__ == "__main__":
    sys.exit(main())
