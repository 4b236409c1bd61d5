#!/usr/bin/env python3
"""S-VCO's rows as its official collator builds them, for tests/test_recipes.c (recipes_svco_rows_match_official).

Runs s-vco/s-vco's own data_collator.py (DatasetSVCOForLlava15, with its chat_template_monkey_patch.py) as
released, on the MVC-style records of tests/fixtures/train/svco_collator.json, and writes the token ids and labels
of every record's four distinct token rows to tests/fixtures/train/svco_collator_rows.json:

    img_chosen    [system] USER: <image>\\n{instruction} ASSISTANT: {chosen_response} </s>   (rows (I_w, y_w), (I_l, y_w))
    img_rejected  the same with rejected_response                                      (rows (I_w, y_l), (I_l, y_l))
    no_img_chosen, no_img_rejected   the image-free rows (no image entry in the conversation)

each at the collator's max_seq_len 2048 (run.py's default: nothing is cut) and 128 (run_svco_example.sh's
MODEL_MAX_LENGTH: the ids cut at 128 with the image one id, after the EOS was forced into the labels, so the EOS
falls off a long row), padding removed. The image stays one <image> id (32000): transformers 4.45's processor
leaves it to the model to expand.

Run from the repository root, with transformers 4.45.2 (the version S-VCO pins in env/install_svco_env.sh;
transformers 5 renders chat templates in the processor instead) in a virtual environment:

    python3 -m venv --system-site-packages /tmp/svco && /tmp/svco/bin/pip install transformers==4.45.2
    git clone https://github.com/s-vco/s-vco /tmp/s-vco   # commit bc8f941
    /tmp/svco/bin/python tests/ref/make_svco_collator_fixtures.py --svco /tmp/s-vco [--data ../shared/data]

Needs torch, pillow, tokenizers, sentencepiece, protobuf. The tokenizer is llava-hf's, rebuilt from LLaMA's
tokenizer.model (chat_ref.llava_hf_tokenizer, with EOS); the processor is transformers' LlavaProcessor with
llava-hf's chat template and a CLIPImageProcessor (the pixels play no part in the ids).
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_ref import LLAVA_HF_CHAT_TEMPLATE, llava_hf_tokenizer  # noqa: E402

RECORDS = "tests/fixtures/train/svco_collator.json"
OUT = "tests/fixtures/train/svco_collator_rows.json"
LENGTHS = (2048, 128)

# MVC records as the released data/mvc.json writes them (its file is not in the snapshot read here; the schema is
# the collator's): an empty system_prompt as MVC has, a few with one; instructions and responses of every shape
# the template meets: digits first, newlines, quotes, Unicode, surrounding spaces, and responses long enough that
# 128 text tokens cut them.
IMAGES = ["images/astronaut.png", "images/coffee.png", "images/chelsea.png", "images/motorcycle_left.png",
          "images/motorcycle_right.png", "images/rocket.jpg"]
LONG = ("The image shows a wide street at dusk, lined with small shops whose signs are lit in warm yellow and red. "
        "On the left a cyclist in a green jacket waits at the crossing next to a lamp post, and behind her two people "
        "carry shopping bags toward a parked blue van. Further down the road a tram approaches, its headlights on, and "
        "the wet asphalt reflects every light, so the whole scene looks brighter than the darkening sky above the roofs.")
TEXTS = [
    ("", "What is the man in the picture holding?", "He is holding a white helmet in his left hand.",
     "He is holding a small American flag in his right hand."),
    ("", "How many cups are on the table?", "2 cups stand on the saucer.", "3 cups stand on the saucer."),
    ("", "How many cats can you see?", "1", "2"),
    ("", "Describe the scene.", LONG + " It is calm.", LONG.replace("cyclist in a green jacket", "runner in a red coat")),
    ("", "Is the motorcycle facing left or right?", "It faces to the left, toward the garage door.",
     "It faces to the right, away from the garage door."),
    ("You are a careful visual assistant.", "What color is the rocket's nose cone?", "The nose cone is black.",
     "The nose cone is white."),
    ("", "Look closely.\nWhat is on the cat's collar?", "A small bell.\nIt is gold.", "A name tag.\nIt is silver."),
    ("", "What does the sign say?", "It says \"Café Luna\" in curly letters.", "It says \"Bar Sol\" in block letters."),
    ("", "Which object is above the other?", "The red ball is above the blue box.", "The blue box is above the red ball."),
    ("", "What is written on the mug? ", " The word \"Monday\".", " The word \"Friday\"."),
    ("A chat between a curious user and an artificial intelligence assistant.", "Where is the dog?",
     "The dog lies under the bench.", "The dog sits on the bench."),
    ("", "Count the birds on the wire.", "7 birds sit on the wire, evenly spaced.", "5 birds sit on the wire, in two groups."),
    ("", "何が見えますか？", "赤い傘を持った人が見えます。", "青い傘を持った人が見えます。"),
    ("", "What time does the clock show?", "10:15, judging by the hands.", "3:45, judging by the hands."),
    ("", "Describe the person's outfit in detail.", LONG.replace("street", "hall"), LONG.replace("street", "yard")),
    ("", "What is the woman doing?", "She is reading a newspaper on a park bench while a pigeon watches her.",
     "She is feeding a pigeon on a park bench while reading a newspaper."),
    ("", "Are the lights on?", "Yes.", "No."),
    ("", "What animal is next to the tree?", "A horse.", "A cow."),
    ("", "What is the boy wearing on his head?", "A blue baseball cap turned backwards.", "A red wool hat with a pompom."),
    ("", "What is the weather like?", "Sunny, with a few clouds 🌤 over the hills.", "Rainy, with dark clouds over the hills."),
    ("", "Which hand holds the phone?", "The left hand.", "The right hand."),
    ("", "How many windows does the house have?", "12 windows, in three rows of four.", "8 windows, in two rows of four."),
    ("", "What is on the plate?", "Two slices of toast and a fried egg.", "A bowl of soup and a spoon."),
    ("", "What is the largest object in the image?", "A red double-decker bus.", "A yellow taxi."),
    ("", "Is the door open or closed?", "Open: you can see the hallway behind it.", "Closed: the handle is down."),
    ("", "Where is the cup relative to the laptop?", "To the right of the laptop, near the edge.",
     "To the left of the laptop, behind the lamp."),
    ("", "What is the child holding?", "A kite shaped like a fish.", "A balloon shaped like a star."),
    ("", "What material is the table made of?", "Dark wood with a glossy finish.", "Glass on a metal frame."),
    ("", "Tell me about the background.", LONG + " The shop windows show coats, books and bread.",
     LONG + " A dog sleeps in a doorway next to the bakery."),
    ("", "What is the number on the jersey?", "23", "8"),
]


def records():
    out = []
    for k, (system, q, a, b) in enumerate(TEXTS):
        out.append({"system_prompt": system, "instruction_prompt": q, "chosen_images": [IMAGES[k % len(IMAGES)]],
                    "rejected_images": [IMAGES[(k + 1) % len(IMAGES)]], "chosen_response": a, "rejected_response": b})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--svco", required=True, help="a checkout of github.com/s-vco/s-vco (commit bc8f941)")
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    import torch
    import transformers
    from transformers import CLIPImageProcessor, LlavaProcessor
    if transformers.__version__ != "4.45.2":
        print(f"warning: transformers {transformers.__version__}; S-VCO pins 4.45.2", file=sys.stderr)
    sys.path.insert(0, os.path.abspath(args.svco))
    from data_collator import DatasetSVCOForLlava15  # the official collator, as released

    tok = llava_hf_tokenizer(os.path.join(args.data, "tokenizers/llama2_tokenizer.model"), add_eos=True)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 336},
                                                             crop_size={"height": 336, "width": 336}),
                          tokenizer=tok, chat_template=LLAVA_HF_CHAT_TEMPLATE)
    recs = records()
    os.makedirs(os.path.dirname(RECORDS), exist_ok=True)
    with open(RECORDS, "w", encoding="utf-8") as f:
        json.dump(recs, f, ensure_ascii=False, indent=1)
    # the collator opens the image paths as they are: a copy of the records with absolute paths
    absolute = [dict(r, chosen_images=[os.path.join(os.path.abspath(args.data), p) for p in r["chosen_images"]],
                     rejected_images=[os.path.join(os.path.abspath(args.data), p) for p in r["rejected_images"]])
                for r in recs]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(absolute, f)
        tmp = f.name
    names = ["img_chosen", "img_rejected", "no_img_chosen", "no_img_rejected"]
    out = {"records": RECORDS, "svco_commit": "bc8f941", "transformers": transformers.__version__, "lengths": {}}
    for max_len in LENGTHS:
        ds = DatasetSVCOForLlava15(tmp, proc, tok, max_len, -100, True)
        rows = []
        for i in range(len(ds)):
            t = ds[i]
            # (pixels, ids, labels, attention) for chosen and rejected, then (ids, labels, attention) image-free
            parts = [t[1:4], t[5:8], t[8:11], t[11:14]]
            row = {}
            for name, (ids, labels, attn) in zip(names, parts):
                keep = attn[0].bool()
                assert bool(torch.all(keep[:int(keep.sum())])), "padding inside a row"
                row[name] = {"ids": ids[0][keep].tolist(), "labels": labels[0][keep].tolist()}
            rows.append(row)
        out["lengths"][str(max_len)] = rows
        cut = sum(len(r["img_chosen"]["ids"]) == max_len for r in rows)
        print(f"max_seq_len {max_len}: {len(rows)} records, {cut} chosen image rows cut", file=sys.stderr)
    os.unlink(tmp)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
    print(f"wrote {RECORDS} and {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
