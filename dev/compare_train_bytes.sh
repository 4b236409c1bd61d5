#!/bin/bash
# Trains the same small runs with two vlm binaries and compares their weights and optimizer state byte for byte:
# a refactor of the training path (issue 13's streaming loader was checked so against main) must not change a bit.
#
#   bash dev/compare_train_bytes.sh OLD_VLM NEW_VLM [WORK_DIR]
#
# Runs: sft (frozen tower: the feature cache; with a validation split), sft training the tower, dpo (the reference
# pre-pass), mdpo with fixed and with fresh crops (online reference), svco from mvc.json and from a packed shard.
# Exit 1 when any run differs.
set -u
OLD=$(realpath "$1") NEW=$(realpath "$2") W=${3:-/tmp/vlm_compare_train}
mkdir -p "$W" && cd "$W"
[ -d world ] || nice -n 19 $NEW data synth --out world --train 24 --eval 1 --pairs 12 --qa 1 --size 64 --quiet
mkdir -p model
cp world/tokenizer.model model/
cat > model/preprocessor_config.json <<J
{"image_processor_type": "CLIPImageProcessor", "do_resize": true, "size": {"shortest_edge": 48}, "resample": 3,
 "do_center_crop": true, "crop_size": {"height": 48, "width": 48}, "do_rescale": true,
 "rescale_factor": 0.00392156862745098, "do_normalize": true, "do_convert_rgb": true,
 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
J
cat > model/config.json <<J
{"model_type": "llava", "image_token_index": $(python3 -c "import json; print(json.load(open('world/world.json'))['image_token_index'])"), "projector_hidden_act": "gelu",
 "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "tie_word_embeddings": false,
 "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
   "num_attention_heads": 2, "image_size": 48, "patch_size": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
 "text_config": {"model_type": "llama", "vocab_size": 576, "hidden_size": 32, "intermediate_size": 64,
   "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
   "max_position_embeddings": 512, "bos_token_id": 1, "eos_token_id": 2}}
J
# preference pairs from the SFT records: chosen = the record's answer, rejected = the next record's
python3 - <<'P'
import json
recs=[json.loads(l) for l in open('world/sft.jsonl')]
with open('world/pairs.jsonl','w') as f:
    for i,r in enumerate(recs):
        f.write(json.dumps({"image":r["image"],"prompt":r["prompt"],"chosen":r["response"],"rejected":recs[(i+1)%len(recs)]["response"]})+"\n")
P
# a base model with weights (an online reference loads them): one SFT step from random
[ -f base/checkpoint-00000001/model.safetensors ] || nice -n 19 $NEW train --recipe sft --model model --init random --data world/sft.jsonl --out base --steps 1 --device cpu --quiet
common="--model base/checkpoint-00000001 --steps 5 --batch 3 --grad-accum 2 --lr 1e-3 --warmup-steps 1 --device cpu --quiet --save-every 0"
runs=("sft|--recipe sft --data world/sft.jsonl --val world/sft.jsonl --eval-every 2"
      "sft-tower|--recipe sft --data world/sft.jsonl --train vision,projector,decoder"
      "dpo|--recipe dpo --data world/pairs.jsonl"
      "mdpo-fixed|--recipe mdpo --data world/pairs.jsonl --crop fixed"
      "mdpo-fresh|--recipe mdpo --data world/pairs.jsonl --ref online"
      "svco|--recipe svco --data world/mvc.json --val world/mvc.json --eval-every 2"
      "svco-shard|--recipe svco --data world/mvc.shard")
[ -f world/mvc.shard ] || nice -n 19 $NEW data pack --input world/mvc.json --kind mvc --out world/mvc.shard --size 48 >/dev/null 2>&1 || echo "pack failed"
fail=0
for r in "${runs[@]}"; do
    name=${r%%|*} flags=${r#*|}
    for side in OLD NEW; do
        bin=$OLD; [ $side = NEW ] && bin=$NEW
        rm -rf out/$name/$side
        nice -n 19 $bin train $common $flags --out out/$name/$side > out_$name.$side.log 2>&1 || { echo "$name $side failed"; tail -3 out_$name.$side.log; }
    done
    a=out/$name/OLD/checkpoint-00000005 b=out/$name/NEW/checkpoint-00000005
    if cmp -s $a/model.safetensors $b/model.safetensors && cmp -s $a/optimizer.safetensors $b/optimizer.safetensors; then echo "$name: identical"
    else echo "$name: DIFFER"; ls $a $b; fail=1; fi
done
exit $fail
