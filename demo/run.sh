#!/bin/bash
# The miniature study (DESIGN.md §5), end to end from nothing:
#
#   1. a synthetic world with language priors and difficulty knobs (vlm data synth): each shape has a typical
#      colour and a partner shape in training; some objects are faint, scenes hold one to four objects, and
#      where a model cannot see (in this world: mostly in clutter) it falls back to the priors, as real VLMs do
#      where visual evidence is weak (difficulty.md reports the metrics by faintness and by clutter)
#   2. a tiny CLIP trained contrastively on the captions (vlm train --recipe clip --init random): the scorer of
#      CLIP-DPO and of the MVC filter, and the LLaVA's starting vision tower
#   3. a tiny LLaVA: that tower + projector + decoder with the world's own tokenizer, SFT on captions and QA
#   4. preference data by each method: SeVa (answers on original vs diffusion-noised images), CLIP-DPO (sampled
#      captions ranked by the CLIP), MVC (minimal-contrast pairs kept by CLIP similarity; also as plain DPO
#      pairs, S-VCO's own baseline)
#   5. from the one SFT model, at equal budget (steps x pairs): DPO on SeVa pairs, DPO on CLIP-DPO pairs, DPO on
#      MVC pairs, mDPO, VCO and S-VCO; each method's learning rate chosen from a small grid on the validation
#      split (never the test files), then SEEDS alignment runs at that rate
#   6. every model on the held-out test scenes: POPE random/popular/adversarial (>= 1,000 questions each in
#      the cpu and full configurations), CHAIR, MMVP, QA, by difficulty; one table with 95% intervals and the
#      paired differences against SFT and DPO-MVC (vlm eval table), loss curves, timings, in notes/results/
#
# Usage: bash demo/run.sh [cpu|full|test]; without an argument (what `make demo` runs): full where a GPU
# answers, cpu elsewhere. cpu is the study on a 2-core CPU in about 15 minutes; full is the same study at a
# larger size for one GPU (several SFT seeds); test is the test suite's tiny run (every stage, numbers
# meaningless). Environment: DEMO_OUT (work folder, default demo-out/CONFIG), RESULTS (default
# notes/results/demo-CONFIG), SEEDS (alignment seeds), VLM (the binary, default ./vlm), DEVICE (default: asked
# once of `vlm device`), BPE (the CLIP BPE file, default ../shared/data/tokenizers/, else .deps/shared/tokenizers/),
# JOBS (alignment methods run side by side: the CPU count up to 6 on the CPU, 1 on a GPU), SFT_SEEDS (e.g. "1 2 3"
# on the CPU: the whole pipeline per seed, an SFT model each, as full does), SWEEP (1: also every method at every
# rate of the grid on the test split, tables and the trade-off chart in RESULTS/lr-sweep/, reported apart and never
# used to choose; default 1 in cpu and test, 0 in full, where it would triple the alignment's time).
set -euo pipefail
VLM=${VLM:-./vlm}
# idle OpenMP threads spin briefly, then sleep: spinning without bound (libgomp's default when the machine looks
# free) makes the many short parallel regions 10-100x slower on 2 cores shared with anything else, and sleeping
# at once (OMP_WAIT_POLICY=passive) costs an SFT step 1.5x on an idle machine (notes/perf.md). While other
# processes keep the cores busy, vlm itself drops to 1 thread (util/threads.h; OMP_NUM_THREADS fixes the count).
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-20000}
[ -x "$VLM" ] || { echo "demo/run.sh: $VLM not built (make)" >&2; exit 2; }
# one device decision for the whole run, so the no-GPU notice shows once
DEVICE=${DEVICE:-$("$VLM" device auto)}
CONFIG=${1:-$([ "$DEVICE" = cuda ] && echo full || echo cpu)}
# The six alignment methods run JOBS at a time, each with THREADS_PER_JOB threads: at the demo's sizes a step
# gains little from a second thread (hundreds of short parallel regions) and nearly 2x from a second process
# (notes/perf.md). One at a time on a GPU.
NCPU=${OMP_NUM_THREADS:-$(nproc)}
if [ "$DEVICE" = cuda ]; then JOBS=${JOBS:-1}; else JOBS=${JOBS:-$((NCPU < 6 ? NCPU : 6))}; fi
[ "$JOBS" -ge 1 ] 2>/dev/null || { echo "demo/run.sh: JOBS must be a positive integer (got '$JOBS')" >&2; exit 2; }
THREADS_PER_JOB=$([ "$DEVICE" = cuda ] || echo $((NCPU / JOBS > 1 ? NCPU / JOBS : 1)))
OUT=${DEMO_OUT:-demo-out/$CONFIG}
TOK=../shared/data/tokenizers
[ -d "$TOK" ] || TOK=.deps/shared/tokenizers
BPE=${BPE:-$TOK/clip_bpe_simple_vocab_16e6.txt.gz}

# Sizes. TRAIN training scenes (each a caption and QA questions QA; fewer are memorized: with 6,000 the SFT model of
# `cpu` answered 99% of training colour questions and 84% of held-out ones), EVAL test scenes (POPE: ~4.4 questions per
# scene and split), VAL validation scenes, PROBE the colour probe's held-out scenes (the test scenes and more, for
# the SFT models only), PAIRS minimal-contrast pairs; HARD the fraction of faint objects,
# FAINT their opacity. The training split's priors: PRIOR how often a shape takes its typical colour, COOC how
# often a later object is an earlier one's partner, UNSEEN how often such a partner is hidden (named by the
# scene's SFT text, not drawn: where the image cannot refute it, the model learns the co-occurrence prior,
# POPE's adversarial hallucination). The alignment budget is PREF_STEPS steps of PREF_BATCH pairs for every
# method; GRID the learning rates tried on the validation split (the first seed's run at the chosen rate is
# reused). PREF_QUESTIONS questions for SeVa's pairs (and mDPO's) and CAPTIONS caption prompts for CLIP-DPO's:
# a builder keeps only the prompts whose two answers differ (in cpu about one question in seven for SeVa, four
# captions in seven for CLIP-DPO), so these are sized for about as many distinct pairs as the PAIRS of MVC keep,
# and no method goes over a few pairs many more times than the others.
case $CONFIG in
test)   # the test suite's run (tests/test_demo.c): every stage at the smallest size, in well under a minute
    SEEDS=${SEEDS:-1}
    SIZE=32; PATCH=8; TRAIN=40; EVAL=4; VAL=3; PROBE=40; PAIRS=16; HARD=0.2; FAINT=0.35; QA=3; EXIST=0.5; PRIOR=0.6; COOC=0.9; UNSEEN=0.3
    CLIP_WIDTH=32; CLIP_LAYERS=2; CLIP_STEPS=6; CLIP_BATCH=16; CLIP_LR=5e-4; FEATURE_LAYER=-2
    LM_WIDTH=32; LM_LAYERS=1; LM_FFN=64
    SFT_STEPS=6; SFT_BATCH=8; SFT_LR=1e-3; SFT_TRAIN=projector,decoder
    PREF_QUESTIONS=8; CAPTIONS=8; CANDIDATES=3; PREF_STEPS=2; PREF_BATCH=2; GRID="1e-4 1e-3"
    MAX_NEW=6; SWEEP=${SWEEP:-1}
    ;;
cpu)    # 2 cores, about 15 minutes: the study, with one SFT model and SEEDS alignment runs of each method
    SEEDS=${SEEDS:-1 2 3}
    SIZE=48; PATCH=16; TRAIN=20000; EVAL=240; VAL=60; PROBE=2000; PAIRS=1200; HARD=0.2; FAINT=0.35; QA=6; EXIST=0.5; PRIOR=0.6; COOC=0.9; UNSEEN=0.6
    CLIP_WIDTH=96; CLIP_LAYERS=3; CLIP_STEPS=4800; CLIP_BATCH=64; CLIP_LR=5e-4; FEATURE_LAYER=-3
    LM_WIDTH=128; LM_LAYERS=2; LM_FFN=344
    SFT_STEPS=20000; SFT_BATCH=32; SFT_LR=1e-3; SFT_TRAIN=projector,decoder
    PREF_QUESTIONS=7000; CAPTIONS=1800; CANDIDATES=4; PREF_STEPS=300; PREF_BATCH=16; GRID="3e-5 1e-4 3e-4"
    MAX_NEW=40; SWEEP=${SWEEP:-1}
    ;;
full)   # one GPU: the same study, larger, three SFT seeds
    SEEDS=${SEEDS:-1 2 3}
    SIZE=64; PATCH=8; TRAIN=20000; EVAL=480; VAL=120; PROBE=2000; PAIRS=4000; HARD=0.2; FAINT=0.35; QA=6; EXIST=0.5; PRIOR=0.6; COOC=0.9; UNSEEN=0.3
    CLIP_WIDTH=256; CLIP_LAYERS=6; CLIP_STEPS=3000; CLIP_BATCH=256; CLIP_LR=5e-4; FEATURE_LAYER=-2
    LM_WIDTH=512; LM_LAYERS=6; LM_FFN=1376
    SFT_STEPS=6000; SFT_BATCH=64; SFT_LR=5e-4; SFT_TRAIN=projector,decoder
    PREF_QUESTIONS=4000; CAPTIONS=4000; CANDIDATES=5; PREF_STEPS=300; PREF_BATCH=16; GRID="1e-5 1e-4 1e-3"
    MAX_NEW=48; SWEEP=${SWEEP:-0}
    ;;
*) echo "demo/run.sh: unknown configuration '$CONFIG' (cpu, full or test)" >&2; exit 2 ;;
esac
case $SWEEP in 0|1) ;; *) echo "demo/run.sh: SWEEP must be 0 or 1 (got '$SWEEP')" >&2; exit 2 ;; esac
# the SFT seeds: one shared SFT model on the CPU, one per seed on the GPU (the whole pipeline per seed). More
# than one (SFT_SEEDS="1 2 3" on the CPU) runs the whole pipeline per seed there too: each SFT model is aligned
# with its own seed only, so the intervals cover the SFT model's seed, which one shared model cannot
SFT_SEEDS=${SFT_SEEDS:-$([ "$CONFIG" = full ] && echo "$SEEDS" || echo "${SEEDS%% *}")}
PER_SEED=$({ [ "$CONFIG" = full ] || [ "$(wc -w <<< "$SFT_SEEDS")" -gt 1 ]; } && echo 1 || true)
# align_seeds SFT_SEED: the alignment seeds of one SFT model
align_seeds() { if [ -n "$PER_SEED" ]; then echo "$1"; else echo "$SEEDS"; fi; }

[ -f "$BPE" ] || { echo "demo/run.sh: $BPE not found (set BPE, run from the repository next to ../shared, or make deps-device)" >&2; exit 2; }
mkdir -p "$OUT"
LOG="$OUT/demo.log"
TIMES="$OUT/timings.tsv"
T0=$SECONDS
TSTAGE=$SECONDS
STAGE_NAME=""
# stage NAME: a header line, and the time of the stage before it into timings.tsv
stage() {
    [ -n "$STAGE_NAME" ] && printf '%s\t%d\n' "$STAGE_NAME" $((SECONDS - TSTAGE)) >> "$TIMES"
    STAGE_NAME="$*"; TSTAGE=$SECONDS
    [ -n "$*" ] && echo "== [$((SECONDS - T0))s] $*" | tee -a "$LOG"
    return 0
}
# a failed background job (its own message says which command): stop the others and the run
stop_jobs() {
    local running
    running=$(jobs -rp)
    [ -n "$running" ] && kill $running 2>/dev/null
    wait 2>/dev/null
    echo "demo/run.sh: an alignment job failed (see $LOG); stopped the others" >&2
    exit 1
}
# a vlm command, its stderr into the log (the progress lines stay visible on the terminal); a failure stops
# the run naming the command
vlm() {
    "$VLM" "$@" 2> >(tee -a "$LOG" >&2) || { echo "demo/run.sh: stage failed: vlm $* (see $LOG)" >&2; exit 1; }
}
# --resume where a training stage was stopped part way (its folder has a log or checkpoints): it continues from
# its last checkpoint, bit-exactly; a new run in such a folder would be refused
resume_flag() { if [ -e "$1/metrics.jsonl" ] || [ -e "$1/latest" ]; then echo --resume; fi; }
# the newest checkpoint of a training output folder (its `latest` file names it; an empty one, left by a
# first save that was stopped, means none yet: the checks below use -s)
latest() { echo "$1/$(cat "$1/latest")"; }

# ---- 1. the world ---------------------------------------------------------------------------------------
W=$OUT/world
if [ ! -f "$W/world.json" ]; then
    stage "synthetic world: $TRAIN training scenes, $EVAL test and $VAL validation scenes, $PAIRS contrast pairs, ${SIZE}px, $HARD faint, $UNSEEN of partners hidden"
    vlm data synth --out "$W" --seed 1 --train "$TRAIN" --eval "$EVAL" --val "$VAL" --pairs "$PAIRS" --size "$SIZE" \
        --hard "$HARD" --faint-alpha "$FAINT" --qa "$QA" --exist-share "$EXIST" --prior "$PRIOR" --cooc "$COOC" --unseen "$UNSEEN" --quiet
fi
# The colour probe: PROBE held-out scenes of the same world for the SFT models' colour answers. The test split
# draws colours without the prior, so only about one colour question in eight (24 in cpu) is about a typically
# coloured object, too few to measure an error rate near 0. Every scene has its own random stream, so these are
# the test scenes and more (the first EVAL are the test split's), and no training scene is needed to make them.
PW=$OUT/probe_world
if [ "$PROBE" -gt 0 ] && [ ! -f "$PW/world.json" ]; then
    stage "colour probe: $PROBE held-out scenes"
    vlm data synth --out "$PW" --seed 1 --train 0 --eval "$PROBE" --val 0 --pairs 0 --size "$SIZE" \
        --hard "$HARD" --faint-alpha "$FAINT" --qa "$QA" --exist-share "$EXIST" --prior "$PRIOR" --cooc "$COOC" --unseen "$UNSEEN" --quiet
fi
# the world's tokenizer: its size sets the decoder's vocabulary, <image> comes right after its pieces
world_int() { awk -v k="\"$1\"" '$1 == k":" || index($0, k":") { gsub(/[^0-9]/, "", $NF); print $NF; exit }' "$W/world.json"; }
IMAGE_TOKEN=$(world_int image_token_index)
VOCAB=$(world_int vocab_size)
[ -n "$IMAGE_TOKEN" ] && [ -n "$VOCAB" ] || { echo "demo/run.sh: $W/world.json has no image_token_index / vocab_size" >&2; exit 1; }

# ---- 2. CLIP --------------------------------------------------------------------------------------------
vision_config() {  # WIDTH LAYERS
    cat <<EOF
{"model_type": "clip_vision_model", "hidden_size": $1, "intermediate_size": $((4 * $1)), "num_hidden_layers": $2,
   "num_attention_heads": 4, "image_size": $SIZE, "patch_size": $PATCH, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
EOF
}
# the chat template of every LLaVA stage: the image after the question (data/chat.h; notes/results/README.md)
TEMPLATE=llava_hf_image_last
# CLIP's image pipeline at the world's size, written beside each config so every checkpoint carries it
preprocessor_config() {
    cat <<EOF
{"image_processor_type": "CLIPImageProcessor", "do_resize": true, "size": {"shortest_edge": $SIZE}, "resample": 3,
 "do_center_crop": true, "crop_size": {"height": $SIZE, "width": $SIZE}, "do_rescale": true,
 "rescale_factor": 0.00392156862745098, "do_normalize": true, "do_convert_rgb": true,
 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
EOF
}
mkdir -p "$OUT/clip_config"
preprocessor_config > "$OUT/clip_config/preprocessor_config.json"
cat > "$OUT/clip_config/config.json" <<EOF
{"model_type": "clip", "projection_dim": $CLIP_WIDTH, "logit_scale_init_value": 2.6592,
 "vision_config": $(vision_config "$CLIP_WIDTH" "$CLIP_LAYERS"),
 "text_config": {"model_type": "clip_text_model", "vocab_size": 49408, "hidden_size": $CLIP_WIDTH,
   "intermediate_size": $((4 * CLIP_WIDTH)), "num_hidden_layers": $CLIP_LAYERS, "num_attention_heads": 4,
   "max_position_embeddings": 48, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
   "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1}}
EOF
if [ ! -s "$OUT/clip/latest" ]; then
    stage "CLIP contrastive pretraining: $CLIP_STEPS steps of $CLIP_BATCH pairs"
    vlm train --recipe clip --model "$OUT/clip_config" --init random --data "$W/clip.jsonl" --tokenizer "$BPE" $(resume_flag "$OUT/clip") \
        --out "$OUT/clip" --steps "$CLIP_STEPS" --batch "$CLIP_BATCH" --lr "$CLIP_LR" --warmup-steps $((CLIP_STEPS / 10)) \
        --weight-decay 0.1 --device "$DEVICE" --log-every 50
fi
CLIP=$(latest "$OUT/clip")

# ---- 3. LLaVA: the CLIP tower + projector + decoder, SFT ------------------------------------------------
# Features from the tower's layer FEATURE_LAYER: the second-to-last, as LLaVA takes them, except in the 3-layer
# tower of `cpu`, where the first layer's output keeps the shapes better than the second's (a probe: 88.6% against
# 85.8%; notes/results/README.md, fifth pass). The tower comes from the CLIP and stays
# frozen (SFT_TRAIN): trained through the language loss from the start it learns to erase the image
# (notes/results/README.md, calibration).
mkdir -p "$OUT/llava_config"
cp "$W/tokenizer.model" "$OUT/llava_config/tokenizer.model"
preprocessor_config > "$OUT/llava_config/preprocessor_config.json"
cat > "$OUT/llava_config/config.json" <<EOF
{"model_type": "llava", "image_token_index": $IMAGE_TOKEN, "projector_hidden_act": "gelu",
 "vision_feature_layer": $FEATURE_LAYER, "vision_feature_select_strategy": "default", "tie_word_embeddings": false,
 "vision_config": $(vision_config "$CLIP_WIDTH" "$CLIP_LAYERS"),
 "text_config": {"model_type": "llama", "vocab_size": $VOCAB, "hidden_size": $LM_WIDTH, "intermediate_size": $LM_FFN,
   "num_hidden_layers": $LM_LAYERS, "num_attention_heads": 4, "num_key_value_heads": 4, "rms_norm_eps": 1e-5,
   "max_position_embeddings": 512, "bos_token_id": 1, "eos_token_id": 2}}
EOF

# sample MODEL DATA OUT [flags]: greedy answers, short
sample() {
    local model=$1 data=$2 out=$3
    shift 3
    [ -f "$out" ] || vlm sample --model "$model" --data "$data" --out "$out" --max-new-tokens 4 --batch 128 \
        --template "$TEMPLATE" --device "$DEVICE" "$@"
}

# evaluate MODEL DIR [PREFIX]: the test benchmarks (PREFIX val_: the validation split's POPE and QA) into DIR
evaluate() {
    local model=$1 dir=$2 p=${3:-}
    mkdir -p "$dir"
    for split in random popular adversarial; do sample "$model" "$W/${p}pope_$split.jsonl" "$dir/pope_$split.jsonl"; done
    sample "$model" "$W/${p}qa.jsonl" "$dir/qa.jsonl"
    vlm eval pope --questions "$W/${p}pope_random.jsonl" --answers "$dir/pope_random.jsonl" \
        --questions "$W/${p}pope_popular.jsonl" --answers "$dir/pope_popular.jsonl" \
        --questions "$W/${p}pope_adversarial.jsonl" --answers "$dir/pope_adversarial.jsonl" \
        --by difficulty --by kind --by n_objects --out "$dir/pope.json" >/dev/null
    vlm eval qa --questions "$W/${p}qa.jsonl" --answers "$dir/qa.jsonl" --by type --by difficulty --by typical \
        --by type+difficulty --by type+n_objects --by type+typical --out "$dir/qa.json" >/dev/null
    [ -n "$p" ] && return
    sample "$model" "$W/chair_prompts.jsonl" "$dir/chair.jsonl" --max-new-tokens "$MAX_NEW"
    sample "$model" "$W/mmvp_prompts.jsonl" "$dir/mmvp.jsonl"
    vlm eval chair --captions "$dir/chair.jsonl" --questions "$W/chair_prompts.jsonl" --objects "$W/chair_objects.json" \
        --synonyms "$W/synonyms.txt" --no-coco-rules --out "$dir/chair.json" >/dev/null
    vlm eval mmvp --questions "$W/mmvp.csv" --answers "$dir/mmvp.jsonl" --out "$dir/mmvp.json" >/dev/null
}

# The metrics of the study: POPE (existence; the adversarial split's negatives are what the priors suggest),
# QA, colour questions about atypically coloured objects (where the colour prior misleads) and how many wrong
# answers name the typical colour, captions (CHAIR) and MMVP pairs.
METRICS=pope.random.acc,pope.popular.acc,pope.adversarial.acc,pope.adversarial.yes,pope.adversarial.by.kind.partner.fpr,qa.acc,qa.by.typical.false.acc,qa.prior_err,chair.s,chair.i,mmvp.pairs
# The calibration by difficulty: faint objects (POPE's present objects, colour questions) and clutter (objects in
# the scene); colour accuracy on typically and atypically coloured objects, the contrast the colour prior makes.
DIFFICULTY_METRICS=pope.random.by.difficulty.easy.acc,pope.random.by.difficulty.hard.acc,pope.random.by.n_objects.1.acc,pope.random.by.n_objects.4.acc,qa.by.type+difficulty.color+easy.acc,qa.by.type+difficulty.color+hard.acc,qa.by.type+n_objects.color+1.acc,qa.by.type+n_objects.color+2.acc,qa.by.type+n_objects.color+3.acc,qa.by.type+n_objects.color+4.acc,qa.by.type+typical.color+true.acc,qa.by.type+typical.color+false.acc
# The colour probe's metrics (the SFT models on PROBE more scenes): colour accuracy on typically and atypically
# coloured objects and on clearly drawn ones, and the share of wrong colour answers that name the typical colour.
PROBE_METRICS=qa.by.type+typical.color+true.acc,qa.by.type+typical.color+false.acc,qa.by.type+difficulty.color+easy.acc,qa.prior_err
# validation score of an evaluated folder, in percent: the mean of POPE adversarial accuracy, QA accuracy and
# colour accuracy on atypical objects (what the learning-rate grid maximizes, the same rule for every method)
VAL_METRICS=pope.adversarial.acc,qa.acc,qa.by.typical.false.acc
val_score() {
    "$VLM" eval table --metrics "$VAL_METRICS" --resamples 1 --json "$1/val_table.json" "$1" > /dev/null
    "$VLM" eval score --table "$1/val_table.json" --metrics "$VAL_METRICS" | cut -f2
}

# the methods: name recipe data(file in the world folder, per SFT seed) extra-flags
METHODS=("dpo-seva dpo seva" "dpo-clipdpo dpo clipdpo" "dpo-mvc dpo mvc_dpo" "mdpo mdpo seva" "vco vco mvc" "svco svco mvc")

RUNS=()
PROBE_RUNS=()
for sseed in $SFT_SEEDS; do
    S=$OUT/sft$sseed
    if [ ! -s "$S/sft/latest" ]; then
        stage "SFT of the LLaVA (seed $sseed): $SFT_STEPS steps of $SFT_BATCH"
        vlm train --recipe sft --model "$OUT/llava_config" --init random --vision-from "$CLIP" --train "$SFT_TRAIN" $(resume_flag "$S/sft") \
            --data "$W/sft.jsonl" --template "$TEMPLATE" --out "$S/sft" --steps "$SFT_STEPS" --batch "$SFT_BATCH" --lr "$SFT_LR" \
            --warmup-steps $((SFT_STEPS / 10)) --seed "$sseed" --device "$DEVICE" --log-every 25
    fi
    SFT=$(latest "$S/sft")
    # the alignment seeds of this SFT model, and where its evaluation goes: one shared SFT model serves every
    # seed (one run, paired with each); with a model per seed the folder names the seed, so vlm eval table
    # pairs it with that seed's runs
    ASEEDS=$(align_seeds "$sseed")
    if [ -n "$PER_SEED" ]; then SFT_EVAL=$S/seed$sseed/eval/sft; else SFT_EVAL=$S/eval/sft; fi
    if [ ! -f "$SFT_EVAL/mmvp.json" ]; then
        stage "evaluating the SFT model (seed $sseed)"
        evaluate "$SFT" "$SFT_EVAL"
    fi
    RUNS+=("$SFT_EVAL")
    if [ "$PROBE" -gt 0 ]; then
        PE=$S/probe/sft
        if [ ! -f "$PE/qa.json" ]; then
            stage "colour probe: the SFT model (seed $sseed) on $PROBE held-out scenes"
            mkdir -p "$PE"
            sample "$SFT" "$PW/qa.jsonl" "$PE/qa.jsonl"
            vlm eval qa --questions "$PW/qa.jsonl" --answers "$PE/qa.jsonl" --by type+typical --by type+difficulty \
                --out "$PE/qa.json" > "$PE/qa.txt"
        fi
        PROBE_RUNS+=("$PE")
    fi

    # ---- 4. preference data ----
    P=$S/prefs
    mkdir -p "$P"
    # the questions: SFT prompts of the training scenes (image paths stay relative to the world folder)
    if [ ! -f "$W/pref_questions.jsonl" ]; then
        awk -v n="$PREF_QUESTIONS" '!/"type":"caption"/ && k < n { print; k++ }' "$W/sft.jsonl" > "$W/pref_questions.jsonl"
        awk -v n="$CAPTIONS" '/"type":"caption"/ && k < n { print; k++ }' "$W/sft.jsonl" > "$W/caption_questions.jsonl"
    fi
    if [ ! -f "$W/seva_sft$sseed.jsonl" ]; then
        stage "SeVa data (answers on original and diffusion-noised images)"
        sample "$SFT" "$W/pref_questions.jsonl" "$P/seva_original.jsonl"
        sample "$SFT" "$W/pref_questions.jsonl" "$P/seva_noised.jsonl" --augment diffusion:500 --augment-seed "$sseed"
        vlm data seva --questions "$W/pref_questions.jsonl" --chosen "$P/seva_original.jsonl" \
            --rejected "$P/seva_noised.jsonl" --allow-empty --out "$W/seva_sft$sseed.jsonl"
    fi
    if [ ! -f "$W/clipdpo_sft$sseed.jsonl" ]; then
        stage "CLIP-DPO data ($CANDIDATES sampled captions per image, ranked by the CLIP)"
        sample "$SFT" "$W/caption_questions.jsonl" "$P/candidates.jsonl" --n "$CANDIDATES" --temperature 1 --top-p 0.95 \
            --seed "$sseed" --max-new-tokens "$MAX_NEW"
        vlm data clipdpo --questions "$W/caption_questions.jsonl" --samples "$P/candidates.jsonl" --n "$CANDIDATES" \
            --clip "$CLIP" --tokenizer "$BPE" --min-gap 1 --device "$DEVICE" --allow-empty --out "$W/clipdpo_sft$sseed.jsonl"
    fi
    if [ ! -f "$W/mvc_sft$sseed.jsonl" ]; then
        stage "MVC pairs kept by CLIP image similarity (and the same pairs as plain DPO pairs)"
        vlm data mvc --data "$W/mvc.json" --clip "$CLIP" --tokenizer "$BPE" --min-sim 0.5 --device "$DEVICE" \
            --allow-empty --out "$W/mvc_sft$sseed.jsonl" --dpo-out "$W/mvc_dpo_sft$sseed.jsonl"
    fi

    # ---- 5. alignment: the learning rate on the validation split, then every seed ----
    # align NAME RECIPE DATA LR SEED DIR: one run (skipped when done); the runs of one SFT model share the
    # reference pre-pass of each data set (--ref-cache: grid and seeds compute it once)
    align() {
        local name=$1 recipe=$2 data=$3 lr=$4 seed=$5 dir=$6
        [ -s "$dir/latest" ] && return
        vlm train --recipe "$recipe" --model "$SFT" --data "$data" --template "$TEMPLATE" --out "$dir" --steps "$PREF_STEPS" $(resume_flag "$dir") \
            --batch "$PREF_BATCH" --lr "$lr" --warmup-steps $((PREF_STEPS / 10)) --seed "$seed" --device "$DEVICE" \
            --log-every 10 --quiet --ref-cache "$S/refcache"
    }
    # method_runs NAME RECIPE DATA: one method's grid (first SFT model only), its seeds' runs and evaluations;
    # runs as a background job beside the others, so its stage lines go to the log and timings as they finish
    method_runs() {
        local name=$1 recipe=$2 data=$3 first=${ASEEDS%% *} lr seed R E
        STAGE_NAME=""
        [ -n "$THREADS_PER_JOB" ] && export OMP_NUM_THREADS=$THREADS_PER_JOB
        # the grid runs on the first SFT model only; later SFT seeds (full) reuse its choice
        local G=$OUT/grid/$name
        if [ ! -f "$G/chosen" ]; then
            stage "$name ($recipe on $(basename "$data")): learning rate from {$GRID} on the validation split"
            local best="" best_score=-1 score
            for lr in $GRID; do
                align "$name" "$recipe" "$data" "$lr" "$first" "$G/lr$lr"
                evaluate "$(latest "$G/lr$lr")" "$G/lr$lr/val" val_
                score=$(val_score "$G/lr$lr/val")
                echo "   $name lr $lr: validation score $score" | tee -a "$LOG"
                if awk -v a="$score" -v b="$best_score" 'BEGIN { exit !(a > b) }'; then best=$lr; best_score=$score; fi
            done
            echo "$best" > "$G/chosen"
            echo "$sseed $first" > "$G/run_of"  # the SFT seed and seed its runs are (not the first SFT model's when that one had no pairs)
        fi
        # grid_run SEED: whether the grid's runs are this SFT model's runs with seed SEED (a folder from before
        # run_of was written: the first SFT model's first seed)
        grid_run() { [ "$(cat "$G/run_of" 2>/dev/null || echo "${SFT_SEEDS%% *} ${ASEEDS%% *}")" = "$sseed $1" ]; }
        lr=$(cat "$G/chosen")
        for seed in $ASEEDS; do
            R=$S/seed$seed/$name
            # the grid's run at the chosen rate is this seed's run (same SFT model, same seed)
            mkdir -p "$S/seed$seed"
            if grid_run "$seed" && [ ! -e "$R" ]; then
                ln -sfn "$(cd "$G/lr$lr" && pwd)" "$R"
            fi
            seed_run "$lr" "$R" "$S/seed$seed/eval/$name" ""
        done
        # SWEEP: every rate of the grid for every seed, evaluated on the test split, to show how much the
        # comparison depends on the grid's choice; reported apart (lr-sweep/), nothing is chosen from it
        if [ "$SWEEP" = 1 ]; then
            local l
            for l in $GRID; do
                for seed in $ASEEDS; do
                    E=$S/sweep/lr$l/seed$seed/$name
                    mkdir -p "$(dirname "$E")"
                    if [ "$l" = "$lr" ]; then  # the seed's own run
                        ln -sfn "$(cd "$S/seed$seed/eval/$name" && pwd)" "$E"
                        continue
                    fi
                    R=$S/seed$seed/$name-lr$l
                    if grid_run "$seed"; then R=$G/lr$l; fi
                    seed_run "$l" "$R" "$E" "sweep: "
                done
            done
        fi
        stage ""  # the last stage's time into timings.tsv
    }
    # seed_run LR RUN EVAL PREFIX: inside method_runs (its name, recipe, data and seed), train RUN at LR unless it is
    # done, evaluate it on the test split into EVAL unless that is done, and write the run's hyper-parameters there;
    # PREFIX starts its stage lines ("sweep: ")
    seed_run() {
        local l=$1 r=$2 e=$3 what=$4
        if [ ! -s "$r/latest" ]; then
            stage "$what$name seed $seed at lr $l: $PREF_STEPS steps of $PREF_BATCH"
            align "$name" "$recipe" "$data" "$l" "$seed" "$r"
        fi
        if [ ! -f "$e/qa.json" ] || [ ! -f "$e/mmvp.json" ]; then
            stage "${what}evaluating $name seed $seed at lr $l"
            evaluate "$(latest "$r")" "$e"
        fi
        printf '{"method": "%s", "recipe": "%s", "lr": %s, "steps": %s, "batch": %s, "sft_seed": %s, "seed": %s}\n' \
            "$name" "$recipe" "$l" "$PREF_STEPS" "$PREF_BATCH" "$sseed" "$seed" > "$e/run.json"
    }
    stage "alignment of the six methods, $JOBS at a time (threads each: ${THREADS_PER_JOB:-all})"
    for spec in "${METHODS[@]}"; do
        set -- $spec
        name=$1 recipe=$2 data=$W/${3}_sft$sseed.jsonl
        if [ ! -s "$data" ]; then  # a builder found no pair: the method has nothing to train on
            echo "   $name skipped: $(basename "$data") has no pairs" | tee -a "$LOG"
            continue
        fi
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || stop_jobs; done
        method_runs "$name" "$recipe" "$data" &
    done
    while [ -n "$(jobs -rp)" ]; do wait -n || stop_jobs; done
    for spec in "${METHODS[@]}"; do
        set -- $spec
        for seed in $ASEEDS; do
            [ -f "$S/seed$seed/eval/$1/run.json" ] && RUNS+=("$S/seed$seed/eval/$1")
        done
    done
    # the SFT model beside each seed's sweep runs, so the sweep tables pair them
    if [ "$SWEEP" = 1 ]; then
        for l in $GRID; do
            for seed in $ASEEDS; do ln -sfn "$(cd "$SFT_EVAL" && pwd)" "$S/sweep/lr$l/seed$seed/sft"; done
        done
    fi
done

# ---- 6. the table, the curves, the timings ----------------------------------------------------------------
R=${RESULTS:-notes/results/demo-$CONFIG}
mkdir -p "$R"
stage "results table"
vlm eval table --metrics "$METRICS" --out "$R/table.md" --json "$R/table.json" --svg "$R/results.svg" \
    --baseline sft --baseline dpo-mvc "${RUNS[@]}" > /dev/null
# (not in the test configuration: its four test scenes lack some of the groups, and the table refuses an empty one)
[ "$CONFIG" = test ] || vlm eval table --metrics "$DIFFICULTY_METRICS" --out "$R/difficulty.md" \
    --json "$R/difficulty.json" --baseline sft "${RUNS[@]}" > /dev/null
# the colour probe: colour accuracy on typically and atypically coloured objects, on clearly drawn ones, and how
# many wrong colour answers name the typical colour, with each SFT model's counts
if [ "$PROBE" -gt 0 ]; then
    vlm eval table --metrics "$PROBE_METRICS" --out "$R/colour-probe.md" --json "$R/colour-probe.json" "${PROBE_RUNS[@]}" > /dev/null
    {
        printf '\nCounts on the %s scenes (questions, accuracy, wrong answers, %% of them the typical colour):\n\n```\n' "$PROBE"
        for pr in "${PROBE_RUNS[@]}"; do
            awk -v m="$(basename "$(dirname "$(dirname "$pr")")")" '/^color\+(true|false) / { print m "  " $0 }' "$pr/qa.txt"
        done
        printf '```\n'
    } >> "$R/colour-probe.md"
fi
# the run folders in the JSON tables relative to the work folder: the results name no path of this machine
for f in "$R/table.json" "$R/difficulty.json" "$R/colour-probe.json"; do
    if [ -f "$f" ]; then sed -i "s|\"$OUT/|\"|g" "$f"; fi
done
# SWEEP: one table per learning rate of the grid, every method at that rate on the test split
if [ "$SWEEP" = 1 ]; then
    stage "learning-rate sweep tables"
    mkdir -p "$R/lr-sweep"
    for l in $GRID; do
        SWEEP_RUNS=()
        for sseed in $SFT_SEEDS; do
            for seed in $(align_seeds "$sseed"); do
                for m in sft $(for spec in "${METHODS[@]}"; do set -- $spec; echo "$1"; done); do
                    d=$OUT/sft$sseed/sweep/lr$l/seed$seed/$m
                    [ -f "$d/qa.json" ] && SWEEP_RUNS+=("$d")
                done
            done
        done
        vlm eval table --metrics "$METRICS" --out "$R/lr-sweep/lr$l.md" --json "$R/lr-sweep/lr$l.json" \
            --baseline sft --baseline dpo-mvc --baseline vco "${SWEEP_RUNS[@]}" > /dev/null
        sed -i "s|\"$OUT/|\"|g" "$R/lr-sweep/lr$l.json"
    done
    # the trade-off: each method's change in hallucination against its change in QA, a point per rate; S-VCO
    # against its two rivals on the same pairs, DPO (its paper's baseline) and VCO (its one-sided form)
    vlm eval frontier --baseline sft --baseline dpo-mvc --baseline vco --method svco --y-min -12 --out "$R/lr-sweep/frontier.md" \
        --svg "$R/lr-sweep/frontier.svg" $(for l in $GRID; do echo "$R/lr-sweep/lr$l.json"; done) > /dev/null
fi
for sseed in $SFT_SEEDS; do
    cp "$OUT/sft$sseed/sft/loss.svg" "$R/loss-sft-sft$sseed.svg" 2>/dev/null || true
    for spec in "${METHODS[@]}"; do
        set -- $spec
        for seed in $(align_seeds "$sseed"); do
            cp "$OUT/sft$sseed/seed$seed/$1/loss.svg" "$R/loss-$1-seed$seed.svg" 2>/dev/null || true
            cp "$OUT/sft$sseed/seed$seed/$1/rewards.svg" "$R/rewards-$1-seed$seed.svg" 2>/dev/null || true
        done
    done
done
cp "$OUT/clip/loss.svg" "$R/loss-clip.svg" 2>/dev/null || true
stage "done"
{
    printf 'stage\tseconds\n'
    cat "$TIMES"
    printf 'total\t%d\n' $((SECONDS - T0))
} > "$R/timings.tsv"
rm -f "$TIMES"
echo
cat "$R/table.md"
echo
# the verdict on both kinds of prior-driven error: existence (POPE adversarial) and colour (atypical objects)
{
    "$VLM" eval verdict --table "$R/table.json" --method svco --baseline sft --baseline dpo-mvc
    echo
    "$VLM" eval verdict --table "$R/table.json" --method svco --baseline sft --baseline dpo-mvc --metric qa.by.typical.false.acc
    # at equal learning rates (the sweep): where the grid's choice decides the comparison, this says so
    if [ "$SWEEP" = 1 ]; then echo; sed -n '/at the same setting/,$p' "$R/lr-sweep/frontier.md"; fi
} | tee "$R/verdict.txt"
[ "$CONFIG" = test ] && echo "(the test configuration: every stage ran, but its models are far too small for the numbers to mean anything)"
echo "results in $R (work files in $OUT; $((SECONDS - T0)) s)"
