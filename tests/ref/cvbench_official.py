"""The official CV-Bench graders run on tests/fixtures/cvbench/{questions,answers}.jsonl: writes
tests/fixtures/cvbench/official.json, which tests/test_eval.c (eval_cvbench_matches_official_graders) checks
`vlm eval cvbench` against, question by question and on every aggregate.

  first4    S-VCO's eval_vlm/llava/eval/cvbench_rule_grader.py (s-vco/s-vco, commit bc8f941): run as a
            script on its own answer format ({"source", "task", "answer", "response"} per line); its module
            globals after the run hold the per-source and per-task counts and the 2D, 3D and combined
            accuracies, and its is_answer_correct gives each question's verdict. (It fails with a KeyError
            when a source or task has no right answer, so every one of them has one here.)
  cambrian  Cambrian-1's eval/eval/{ade,coco,omni}/{ade,coco,omni}_test.py (cambrian-mllm/cambrian, commit
            539ffc3): compute_metrics run on each source's answers in its format ({"answer", "gt_answer",
            "category", "options"}); the questions it writes to its "incorrect" file are the wrong ones. The
            combination is the dataset card's (2D = mean of ADE20K and COCO, 3D = Omni3D, CV-Bench = mean).

Both are pure Python and run offline. Get them with git and point at the checkouts:

    python3 tests/ref/cvbench_official.py --svco PATH/s-vco --cambrian PATH/cambrian
"""
import argparse
import contextlib
import io
import json
import os
import runpy
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "cvbench")
CAMBRIAN_SCRIPT = {"ADE20K": "ade/ade_test.py", "COCO": "coco/coco_test.py", "Omni3D": "omni/omni_test.py"}


def run_script(path, argv):
    old = sys.argv
    sys.argv = [path] + argv
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            g = runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = old
    return g, out.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--svco", required=True, help="a checkout of s-vco/s-vco")
    ap.add_argument("--cambrian", required=True, help="a checkout of cambrian-mllm/cambrian")
    args = ap.parse_args()
    questions = [json.loads(l) for l in open(os.path.join(FIX, "questions.jsonl"))]
    answers = [json.loads(l)["text"] for l in open(os.path.join(FIX, "answers.jsonl"))]
    tmp = tempfile.mkdtemp()
    result = {}

    # S-VCO's grader on its own answer format
    path = os.path.join(tmp, "svco_answers.jsonl")
    with open(path, "w") as f:
        for q, a in zip(questions, answers):
            f.write(json.dumps({"question_id": q["idx"], "source": q["source"], "task": q["task"],
                                "answer": q["answer"], "response": a}) + "\n")
    g, printed = run_script(os.path.join(args.svco, "eval_vlm/llava/eval/cvbench_rule_grader.py"), ["--answer_file", path])
    result["first4"] = {
        "correct": [bool(g["is_answer_correct"](q["answer"], a)) for q, a in zip(questions, answers)],
        "by_source": {s: g["source_to_correct"].get(s, 0) / g["source_to_total"][s] for s in g["source_to_total"]},
        "by_task": {t: g["task_to_correct"].get(t, 0) / g["task_to_total"][t] for t in g["task_to_total"]},
        "accuracy_2d": g["accuracy_2d"], "accuracy_3d": g["accuracy_3d"], "cv_bench": g["combined_accuracy"],
        "printed": printed,
    }

    # Cambrian's per-source scripts on their answer format
    correct = [None] * len(questions)
    by_source = {}
    for source, rel in CAMBRIAN_SCRIPT.items():
        rows = [i for i, q in enumerate(questions) if q["source"] == source]
        ans = os.path.join(tmp, "cambrian_%s.jsonl" % source)
        with open(ans, "w") as f:
            for i in rows:
                q = questions[i]
                f.write(json.dumps({"questionId": i, "answer": answers[i], "gt_answer": q["answer"],
                                    "category": q["task"], "options": q["choices"], "model_id": "fixture"}) + "\n")
        wrong = os.path.join(tmp, "incorrect_%s.jsonl" % source)
        g, _ = run_script(os.path.join(args.cambrian, "eval/eval", rel),
                          ["--answers_file", ans, "--output_file", wrong, "--csv_file", os.path.join(tmp, "x.csv")])
        missed = {json.loads(l)["questionId"] for l in open(wrong)}
        for i in rows:
            correct[i] = i not in missed
        by_source[source] = sum(correct[i] for i in rows) / len(rows)
    acc_2d = (by_source["ADE20K"] + by_source["COCO"]) / 2
    result["cambrian"] = {"correct": correct, "by_source": by_source, "accuracy_2d": acc_2d,
                          "accuracy_3d": by_source["Omni3D"], "cv_bench": (acc_2d + by_source["Omni3D"]) / 2}
    with open(os.path.join(FIX, "official.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps({k: {m: v[m] for m in ("accuracy_2d", "accuracy_3d", "cv_bench")} for k, v in result.items()}))


if __name__ == "__main__":
    main()
