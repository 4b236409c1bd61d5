#!/bin/bash
# Streaming training data at two data set sizes (issue 13, item 1): peak RSS, time to the first step and the
# images/s the loader sustains against what a step needs, for a tiny LLaVA whose tower takes 336 px images.
#
#   bash bench/stream_bench.sh [WORK_DIR] [SIZES]     (defaults: /tmp/vlm_stream_bench, "2000 20000")
#
# The images come from `vlm data synth --size 336`. Rendering 20,000 scenes takes long on a small machine, so the
# script renders SOURCE (default 2000; env SOURCE=N) scenes and, for a set of N images, names them N times
# over distinct paths (hard links, cycled): the loader decodes and preprocesses every path as its own image, the
# work and the memory of N distinct images. One SFT record (the caption) per image.
# Env: STEPS (default 30), BATCH (4), WORKERS (VLM_LOADER_WORKERS, 2), VLM=./vlm.
set -eu
WORK=${1:-/tmp/vlm_stream_bench}
SIZES=${2:-"2000 20000"}
SOURCE=${SOURCE:-2000}
STEPS=${STEPS:-30}
BATCH=${BATCH:-4}
WORKERS=${WORKERS:-2}
VLM=$(realpath "${VLM:-./vlm}")
mkdir -p "$WORK"
cd "$WORK"
if [ ! -s synth/sft.jsonl ]; then
    "$VLM" data synth --out synth --train "$SOURCE" --eval 1 --pairs 1 --qa 0 --size 336 --quiet
fi
# a tiny LLaVA with a 336-px CLIP tower (patch 28: 144 image tokens) and the world's tokenizer
mkdir -p model
cp synth/tokenizer.model model/
IMAGE_TOKEN=$(python3 -c "import json; print(json.load(open('synth/world.json'))['image_token_index'])")
VOCAB=$(python3 -c "import json; print(json.load(open('synth/world.json'))['vocab_size'])")
cat > model/preprocessor_config.json <<J
{"image_processor_type": "CLIPImageProcessor", "do_resize": true, "size": {"shortest_edge": 336}, "resample": 3,
 "do_center_crop": true, "crop_size": {"height": 336, "width": 336}, "do_rescale": true,
 "rescale_factor": 0.00392156862745098, "do_normalize": true, "do_convert_rgb": true,
 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
J
cat > model/config.json <<J
{"model_type": "llava", "image_token_index": $IMAGE_TOKEN, "projector_hidden_act": "gelu",
 "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "tie_word_embeddings": false,
 "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
   "num_attention_heads": 2, "image_size": 336, "patch_size": 28, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
 "text_config": {"model_type": "llama", "vocab_size": $VOCAB, "hidden_size": 64, "intermediate_size": 128,
   "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
   "max_position_embeddings": 512, "bos_token_id": 1, "eos_token_id": 2}}
J
mapfile -t SRC < <(ls synth/images/train)
for N in $SIZES; do
    D=set$N
    if [ ! -s $D/sft.jsonl ]; then
        rm -rf $D && mkdir -p $D/images
        python3 - "$N" "$D" synth/sft.jsonl <<'P'
import json, os, sys
n, d, src = int(sys.argv[1]), sys.argv[2], sys.argv[3]
recs = [json.loads(l) for l in open(src)]
with open(os.path.join(d, "sft.jsonl"), "w") as f:
    for i in range(n):
        r = recs[i % len(recs)]
        name = "images/%06d.png" % i
        os.link(os.path.join(os.path.dirname(src), r["image"]), os.path.join(d, name))
        f.write(json.dumps({"image": name, "prompt": r["prompt"], "response": r["response"]}) + "\n")
P
    fi
    echo "== $N images"
    # the training run: the tower runs in every batch (VLM_CACHE_FEATURES=0: no feature pre-pass), progress each step
    rm -rf run$N
    start=$EPOCHREALTIME
    VLM_CACHE_FEATURES=0 VLM_LOADER_WORKERS=$WORKERS /usr/bin/time -v "$VLM" train --recipe sft --model model --init random \
        --data $D/sft.jsonl --out run$N --steps "$STEPS" --batch "$BATCH" --lr 1e-3 --warmup-steps 0 --device cpu \
        --log-every 1 --save-every 0 2> >(while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done > run$N.log)
    sleep 1
    first=$(grep -m1 " step 1/" run$N.log | cut -d' ' -f1)
    rss=$(grep "Maximum resident set size" run$N.log | awk '{print $NF}')
    step_s=$(python3 -c "
import json; r=[json.loads(l) for l in open('run$N/metrics.jsonl')][5:]
print('%.3f' % (sum(x['step_time_s'] for x in r)/len(r)))")
    echo "peak RSS ${rss} KB; first step $(python3 -c "print('%.2f' % ($first - $start))") s after the start; mean step (steps 6-$STEPS) ${step_s} s: the step needs $(python3 -c "print('%.1f' % ($BATCH / $step_s))") images/s"
    # the loader alone, as many threads, on the same data
    "$VLM" data bench --data $D/sft.jsonl --model model --batch "$BATCH" --workers "$WORKERS" --images 1000
done
