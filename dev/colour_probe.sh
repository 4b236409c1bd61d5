#!/bin/bash
# The colour prior of the demo's SFT models on more held-out scenes than the demo evaluates: its 240 test scenes
# hold about 24 colour questions on typically coloured objects, too few to measure an error rate near 0. The world
# is made again with SCENES test scenes and the demo's own settings (read from its world.json); every scene has
# its own random stream, so the demo's test scenes are the first of them and the training split is the same.
# Each SFT model (DEMO_OUT/sft*/sft) answers the QA questions; one table over them (each SFT model a run) gives
# colour accuracy on typically and atypically coloured objects, on clearly drawn ones, and how many wrong colour
# answers name the shape's typical colour (qa.prior_err).
#
# Usage: bash dev/colour_probe.sh DEMO_OUT [SCENES (default 2000)] [OUT (default DEMO_OUT/colour-probe)]
set -euo pipefail
VLM=${VLM:-./vlm}
D=${1:?usage: bash dev/colour_probe.sh DEMO_OUT [SCENES] [OUT]}
N=${2:-2000}
OUT=${3:-$D/colour-probe}
W0=$D/world/world.json
[ -f "$W0" ] || { echo "dev/colour_probe.sh: $W0 not found (run the demo first)" >&2; exit 2; }
# a top-level number of world.json
get() { awk -v k="\"$1\":" '$1 == k { v = $2; gsub(/[,]/, "", v); print v; exit }' "$W0"; }
W=$OUT/world
if [ ! -f "$W/world.json" ]; then
    "$VLM" data synth --out "$W" --seed "$(get seed)" --train "$(get train)" --eval "$N" --val "$(get val)" --pairs "$(get pairs)" \
        --size "$(get size)" --hard "$(get hard)" --faint-alpha "$(get faint_alpha)" --qa "$(get qa_per_scene)" \
        --exist-share "$(get exist_share)" --prior "$(get prior)" --cooc "$(get cooc)" --unseen "$(get unseen)" --quiet
fi
# the same scenes: the demo's test questions are the first of the probe's
head -n "$(wc -l < "$D/world/qa.jsonl")" "$W/qa.jsonl" | cmp -s - "$D/world/qa.jsonl" ||
    { echo "dev/colour_probe.sh: $W/qa.jsonl does not start with $D/world/qa.jsonl (different settings?)" >&2; exit 1; }
RUNS=()
for s in "$D"/sft*/sft; do
    [ -s "$s/latest" ] || continue
    seed=$(basename "$(dirname "$s")")  # sft1, sft2, ...
    E=$OUT/$seed/eval/sft
    mkdir -p "$E"
    [ -f "$E/qa.jsonl" ] || "$VLM" sample --model "$s/$(cat "$s/latest")" --data "$W/qa.jsonl" --out "$E/qa.jsonl" --max-new-tokens 4 \
        --batch 128 --template llava_hf_image_last --device "${DEVICE:-cpu}" 2>/dev/null
    "$VLM" eval qa --questions "$W/qa.jsonl" --answers "$E/qa.jsonl" --by type --by type+typical --by type+difficulty --out "$E/qa.json" > "$E/qa.txt"
    RUNS+=("$E")
done
[ ${#RUNS[@]} -gt 0 ] || { echo "dev/colour_probe.sh: no SFT checkpoint under $D/sft*/sft" >&2; exit 2; }
"$VLM" eval table --metrics qa.by.type+typical.color+true.acc,qa.by.type+typical.color+false.acc,qa.by.type+difficulty.color+easy.acc,qa.prior_err,qa.acc \
    --out "$OUT/table.md" "${RUNS[@]}" | head -3
grep -h "color+true\|color+false" "$OUT"/sft*/eval/sft/qa.txt | sed 's/^/  /'
