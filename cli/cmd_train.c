// vlm train: the recipes of the table (train/recipes.h: SFT, DPO (SeVa, CLIP-DPO), S-VCO, VCO and mDPO on a LLaVA
// model, contrastive CLIP) through the one loop of train/run.h, and --plan, the memory plan of such a run
// (train/plan.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/chat.h"
#include "../train/plan.h"
#include "../train/settings.h"
#include "../train/trainer.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

static void usage(void) {
    printf(
        "usage: vlm train --recipe NAME --model DIR --data FILE --out DIR [flags]\n"
        "       vlm train --recipe NAME (--model DIR | --shape NAME) --plan [flags]\n\n"
        "Trains a Hugging Face LLaVA model with one of the recipes of research/methods.md, or (clip) a CLIPModel\n"
        "with the contrastive loss on {\"image\", \"caption\"} lines. Every recipe starts from the paper's\n"
        "settings (printed at start with their sources, listed at the end); every flag below overrides them.\n\n"
        "data and model\n"
        "  --model DIR          HF LLaVA folder (config.json, safetensors, preprocessor_config.json, tokenizer.model or .json)\n"
        "  --data FILE          training examples (JSONL, or S-VCO's mvc.json; TRL's \"images\" and \"question\" read);\n"
        "                       format in train/data.h\n"
        "  --val FILE           held-out examples: loss and accuracy every --eval-every steps\n"
        "  --images DIR         root of the image paths (default: the data file's folder)\n"
        "  --tokenizer FILE     tokenizer.model or tokenizer.json for text fields (default: DIR's, .model first)\n"
        "  --template NAME      chat template: vicuna_v1, llava_hf (svco's and vco's preset), llava_hf_image_last or\n"
        "                       llava_interleave (default: the recipe's preset, listed below)\n"
        "  --system TEXT        system prompt of every row, an MVC record's own system_prompt included (default: the\n"
        "                       record's, else the template's; \"\": none)\n"
        "  --max-len N          cut responses so rows fit N tokens (an error if the prompt does not fit)\n"
        "  --max-text-len N     the same with the image counted as one token: S-VCO's cut (128 in its\n"
        "                       run_svco_example.sh), which drops a long row's EOS and cuts an image row one text token\n"
        "                       shorter than its image-free row\n"
        "  --skip-bad           skip and count malformed records and records whose image is missing or unreadable\n"
        "                       instead of stopping: every record is then tokenized and every image decoded\n"
        "                       at load (slower; without it a record that fails there stops the run when a\n"
        "                       batch reaches it, naming the file and line)\n"
        "  --train PARTS        comma list of vision,projector,decoder to train (default projector,decoder), or none\n"
        "                       (with LoRA: the adapters only)\n"
        "  --init random        the model folder has config.json only: start from random weights\n"
        "  --vision-from DIR    with --init random: the vision tower from DIR (a CLIPModel, e.g. a --recipe clip\n"
        "                       checkpoint, or a LLaVA folder); its config must match the vision_config\n"
        "  --lora-r R           LoRA adapters of rank R on the decoder (its own weights frozen); with\n"
        "                       --lora-alpha A (default 2R), --lora-dropout P (0.05), --lora-targets q,k,v,o,gate,up,down|all;\n"
        "                       the reference is the model with its adapters off (SeVa: --lora-r 1024 --lora-alpha 2048);\n"
        "                       with --ref online a trained projector is shared with the reference, as in SeVa's code\n"
        "optimization\n"
        "  --steps N | --epochs E   length (default 1 epoch)\n"
        "  --batch N            examples per micro-batch (default 1)    --grad-accum K  (default 1)\n"
        "  --lr X  --beta1 X  --beta2 X  --eps X  --weight-decay X  --max-grad-norm X (0 = off)\n"
        "  --schedule cosine|linear|constant   --warmup-steps N | --warmup-ratio X\n"
        "objective\n"
        "  --beta X             DPO / mDPO beta (0.1)\n"
        "  --betas a,b,c,d      S-VCO betas of attend_w, reject_w, attend_l, reject_l (0.1 each; <= 0 switches off)\n"
        "  --loss-type T[:W],...  DPO's loss, TRL's loss_type (train/losses.h has the math): one type, or a weighted\n"
        "                       sum (MPO: sigmoid:0.8,bco_pair:0.2,sft:1); the types are listed below. --recipe dpo's\n"
        "                       only: S-VCO's and mDPO's losses are their papers' (given to them, it is an error, as is\n"
        "                       any flag a recipe does not read, e.g. --betas to dpo or --template to clip)\n"
        "  --label-smoothing X  e of cDPO (sigmoid) and rDPO (robust)   --reference-free   --ipo (= --loss-type ipo)\n"
        "  --delta X            mDPO anchor margin (0)\n"
        "  --crop-scale LO,HI   mDPO's corrupted image: a random-resized crop keeping LO..HI of the area (0.01,0.2)\n"
        "  --crop fresh|fixed   mDPO's crop. fresh (the preset, as mDPO's code crops inside forward): a new crop in\n"
        "                       every forward pass, so the policy and the reference see different crops and the\n"
        "                       reference must run every step (--ref online, the preset; a cache is refused). fixed:\n"
        "                       one crop per example, drawn at load and shared by the policy, the reference and every\n"
        "                       epoch, so the reference can be the cached pre-pass (--ref cache) and step 1's loss is\n"
        "                       exactly 3 log 2\n"
        "  --ref cache|online   reference log-probs: a cached pre-pass (the preset of dpo, svco, vco) or the frozen\n"
        "                       model every step (mdpo's preset)\n"
        "  --ref-cache DIR      where the pre-pass's cache goes (default --out): runs of one model on one data set\n"
        "                       (a learning-rate grid, seeds) that share DIR compute it once\n"
        "  --no-pack            do not share the image + prompt prefix of paired rows (packing is exact)\n"
        "  --recompute          keep only each decoder layer's input and run its forward again in the backward\n"
        "                       pass (activation recomputation: less memory for one more forward of the layers)\n"
        "run\n"
        "  --out DIR            metrics.jsonl, checkpoints (checkpoint-N/, latest), reference cache\n"
        "  --resume             continue from DIR/latest (bit-exact); refuses when a setting above differs from the\n"
        "                       run's (each is named), unless --force\n"
        "  --force              with --resume: continue with the settings given (no longer bit-exact); without it:\n"
        "                       start a new run in an --out that holds one (refused otherwise)\n"
        "  --stop-at N          stop with a checkpoint once step N is done (then --resume goes on)\n"
        "  --save-every N  --eval-every N  --log-every N  --seed N  --device auto|cpu|cuda\n"
        "  --quiet              no settings table, memory plan or progress lines on the terminal (the settings\n"
        "                       table is in OUT/settings.txt either way)\n"
        "  --peak-tflops X      the GPU's bf16 matmul ceiling for the MFU on the progress line (760: H100)\n"
        "  --attention flash|cudnn   GPU attention (default cudnn, faster; flash is bit-reproducible, which a\n"
        "                       bit-exact --resume on the GPU needs)\n"
        "data parallel: mpirun -np N vlm train ... (one rank per GPU; gradients summed over NCCL on the GPU, MPI on\n"
        "  the CPU): each step's --batch x --grad-accum examples are shared, --grad-accum / N micro-batches a rank\n"
        "                       (--grad-accum must be a multiple of N); rank 0 logs and writes checkpoints, which\n"
        "                       resume on any rank count\n"
        "  --no-zero            every rank keeps the whole AdamW state (default: ZeRO-1, 1/N of it a rank; the same bits)\n"
        "memory plan\n"
        "  --plan               print where the device memory of this run would go and exit, allocating nothing:\n"
        "                       weights, gradients, fp32 masters, AdamW state, activations, reference, LoRA, and\n"
        "                       what-if variants (--recompute, --ref, LoRA, ZeRO-1) against an H200 and an 80 GB GPU.\n"
        "                       Reads --model DIR's config.json only (or --shape llava-7b|llava-1.4b|llava-tiny|\n"
        "                       llava-demo), not --data: rows have --prompt-len N (64) + --response-len N (64) text\n"
        "                       tokens besides the image's. --world-size N: the ZeRO-1 sharding over N ranks (as\n"
        "                       mpirun -np N allocates it). --device cpu plans the CPU\n"
        "                       backend. The flags above shape the plan as they shape the run (--batch, --train,\n"
        "                       --lora-r, --ref, --recompute, --no-pack, --val); the LLaVA recipes only, not clip\n\n"
        "recipes (train/recipes.c) and their presets: flag, value, source\n");
    settings_print_recipes(stdout);
    printf("\nDPO loss types (--loss-type)\n");
    for (int t = 0; dpo_loss_type_name(t); t++) printf("  %-14s %s\n", dpo_loss_type_name(t), dpo_loss_type_summary(t));
}

// Out-of-range values die naming the flag and the value (a negative learning rate or a warm-up longer than the
// run would train something, silently, that nobody asked for).
static void need(int ok, const char *flag, double v, const char *what) {
    if (!ok) fatal("vlm train: %s %.10g: %s", flag, v, what);
}

static void check_ranges(const TrainConfig *c) {
    const OptimConfig *o = &c->optim;
    need(isfinite(o->lr) && o->lr > 0, "--lr", o->lr, "must be a positive number");
    need(isfinite(c->epochs) && c->epochs > 0, "--epochs", c->epochs, "must be a positive number");
    need(c->steps >= 0, "--steps", c->steps, "must be 0 (use --epochs) or positive");
    need(c->batch >= 1, "--batch", c->batch, "must be at least 1");
    need(c->grad_accum >= 1, "--grad-accum", c->grad_accum, "must be at least 1");
    need(o->beta1 >= 0 && o->beta1 < 1, "--beta1", o->beta1, "must be in [0, 1)");
    need(o->beta2 >= 0 && o->beta2 < 1, "--beta2", o->beta2, "must be in [0, 1)");
    need(isfinite(o->eps) && o->eps > 0, "--eps", o->eps, "must be a positive number");
    need(isfinite(o->weight_decay) && o->weight_decay >= 0, "--weight-decay", o->weight_decay, "must be 0 or positive");
    need(isfinite(o->max_grad_norm) && o->max_grad_norm >= 0, "--max-grad-norm", o->max_grad_norm, "must be 0 (off) or positive");
    need(!settings_given(c, "--warmup-steps") || o->warmup_steps >= 0, "--warmup-steps", o->warmup_steps, "must be 0 or positive");
    need(c->warmup_ratio >= 0 && c->warmup_ratio <= 1, "--warmup-ratio", c->warmup_ratio, "must be in [0, 1] (a fraction of the steps)");
    const LossParams *l = &c->loss;
    need(isfinite(l->dpo.beta) && l->dpo.beta > 0, "--beta", l->dpo.beta, "must be a positive number");
    for (int i = 0; i < 4; i++) need(isfinite(l->svco.beta[i]), "--betas", l->svco.beta[i], "must be finite numbers");
    need(l->dpo.label_smoothing >= 0 && l->dpo.label_smoothing <= 0.5, "--label-smoothing", l->dpo.label_smoothing, "must be in [0, 0.5]");
    for (int k = 0; k < l->dpo.n_terms; k++)  // rDPO divides by 1 - 2e
        need(l->dpo.term[k] != DPO_ROBUST || l->dpo.label_smoothing < 0.5, "--label-smoothing", l->dpo.label_smoothing,
             "must be below 0.5 for the robust loss");
    need(isfinite(l->mdpo.delta), "--delta", l->mdpo.delta, "must be a finite number");
    need(c->crop_scale[0] > 0 && c->crop_scale[0] <= c->crop_scale[1] && c->crop_scale[1] <= 1, "--crop-scale", c->crop_scale[0],
         "the low end must be in (0, high] and the high end at most 1");
    need(c->max_len >= 0, "--max-len", c->max_len, "must be 0 (no limit) or positive");
    need(c->max_text_len >= 0, "--max-text-len", c->max_text_len, "must be 0 (no limit) or positive");
    need(c->save_every >= 0, "--save-every", c->save_every, "must be 0 (off) or positive");
    need(c->eval_every >= 0, "--eval-every", c->eval_every, "must be 0 (off) or positive");
    need(c->log_every >= 1, "--log-every", c->log_every, "must be at least 1");
    need(c->stop_at >= 0, "--stop-at", c->stop_at, "must be 0 (off) or positive");
    need(c->lora.r >= 0, "--lora-r", c->lora.r, "must be 0 (off) or positive");
    need(isfinite(c->lora.alpha) && (c->lora.r == 0 || c->lora.alpha > 0), "--lora-alpha", c->lora.alpha, "must be a positive number");
    need(c->lora.dropout >= 0 && c->lora.dropout < 1, "--lora-dropout", c->lora.dropout, "must be in [0, 1)");
    need(isfinite(c->peak_tflops) && c->peak_tflops > 0, "--peak-tflops", c->peak_tflops, "must be a positive number");
}

int cmd_train(int argc, char **argv) {
    Args a = args_init("vlm train", argc, argv);
    if (args_help(&a)) { usage(); return 0; }
    const char *recipe = arg_str(&a, "--recipe", NULL);
    if (!recipe) fatal("vlm train: --recipe is required (see --help for the recipes)");
    TrainConfig c;
    train_config_preset(&c, recipe_find(recipe));
    c.argc = argc;
    c.argv = argv;
    // the settings (train/settings.h): what the recipe's preset sets, and what a resumed run must keep
    for (int i = 0;; i++) {
        int takes_value;
        const char *flag = settings_flag(i, &takes_value);
        if (!flag) break;
        const char *v = takes_value ? arg_str(&a, flag, NULL) : arg_flag(&a, flag) ? "" : NULL;
        if (v) settings_set_from_command_line(&c, flag, takes_value ? v : NULL);
    }
    if (arg_flag(&a, "--ipo")) {  // the older spelling of TRL's IPO
        if (settings_given(&c, "--loss-type")) fatal("vlm train: --ipo and --loss-type: give one (--ipo is --loss-type ipo)");
        if (!(recipe_reads(c.recipe) & READS_DPO_LOSS))
            fatal("vlm train: --ipo is --loss-type ipo, DPO's loss, which --recipe %s does not read (%s)", c.recipe->name, c.recipe->summary);
        settings_set_from_command_line(&c, "--loss-type", "ipo");
    }
    if (chat_template_from_name(c.template_name) < 0)  // never train a format that no other command renders
        fatal("vlm train: --template '%s': expected " CHAT_TEMPLATE_NAMES, c.template_name);
    if (!settings_given(&c, "--lora-alpha")) c.lora.alpha = 2.0f * c.lora.r;  // PEFT's usual alpha = 2r
    if (c.lora.r > 0 && !settings_given(&c, "--train")) c.trainable.train_text = 0;  // LoRA: the decoder's base weights stay frozen
    c.model_dir = arg_str(&a, "--model", NULL);
    c.data_path = arg_str(&a, "--data", NULL);
    c.val_path = arg_str(&a, "--val", NULL);
    c.out_dir = arg_str(&a, "--out", NULL);
    c.device = arg_str(&a, "--device", c.device);
    backend_set_attention(arg_str(&a, "--attention", NULL));
    c.tokenizer = arg_str(&a, "--tokenizer", NULL);
    c.images_dir = arg_str(&a, "--images", NULL);
    c.skip_bad = arg_flag(&a, "--skip-bad");
    c.ref_cache = arg_str(&a, "--ref-cache", NULL);  // where, not what: the cache's header checks model, data and recipe
    c.save_every = (int)arg_int(&a, "--save-every", 0);
    c.eval_every = (int)arg_int(&a, "--eval-every", c.val_path ? 10 : 0);
    c.log_every = (int)arg_int(&a, "--log-every", 1);
    c.resume = arg_flag(&a, "--resume");
    c.force = arg_flag(&a, "--force");
    c.stop_at = (int)arg_int(&a, "--stop-at", 0);
    c.quiet = arg_flag(&a, "--quiet");
    c.recompute = arg_flag(&a, "--recompute");
    c.no_zero = arg_flag(&a, "--no-zero");
    c.peak_tflops = arg_float(&a, "--peak-tflops", c.peak_tflops);
    const char *init = arg_str(&a, "--init", NULL);
    if (init && strcmp(init, "random")) fatal("vlm train: --init '%s': the only choice is random", init);
    c.init_random = init != NULL;
    c.vision_from = arg_str(&a, "--vision-from", NULL);
    const int plan = arg_flag(&a, "--plan");
    const char *shape = arg_str(&a, "--shape", NULL);
    const long prompt_len = arg_int(&a, "--prompt-len", 64), response_len = arg_int(&a, "--response-len", 64);
    const long world = arg_int(&a, "--world-size", 1);
    args_finish(&a);
    check_ranges(&c);
    if (plan) {
        need(prompt_len >= 1 && prompt_len <= 1 << 20, "--prompt-len", (double)prompt_len, "must be from 1 to 2^20");
        need(response_len >= 1 && response_len <= 1 << 20, "--response-len", (double)response_len, "must be from 1 to 2^20");
        need(world >= 1 && world <= 1 << 16, "--world-size", (double)world, "must be from 1 to 65536");
        return plan_train(stdout, &c, shape, (int)prompt_len, (int)response_len, (int)world);
    }
    if (shape || world != 1 || prompt_len != 64 || response_len != 64)
        fatal("vlm train: --shape, --world-size, --prompt-len and --response-len go with --plan (a data-parallel run's ranks "
              "come from mpirun -np N)");
    if (!c.model_dir || !c.data_path || !c.out_dir) fatal("vlm train: --model, --data and --out are required (see --help)");
    return train_run(&c);
}
