// vlm logprobs: the summed log-probability of each record's response under a LLaVA model.
//
// Records (JSON Lines): "image" (a path relative to --images DIR or the JSONL's folder, or a list of paths; or
//   TRL's "images": [paths]; absent = image-free row) and
//   "input_ids" + "n_response": token ids whose last n_response tokens are the response; the image token
//   appears once per image (expanded here to its feature tokens) or exactly as many times as the images have
//   feature tokens (as HF processors emit), or
//   "prompt" (or "question") + "response": text; the prompt is tokenized with BOS and "<image>" marks each
//   image in order (a prompt without any gets one per image where the chat templates put the image: after the
//   first "USER: ", else first), the response is tokenized on its own and followed by EOS.
// Output: one line per record {"index": i, "logprob": x, "n_response": k}.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/preprocess.h"
#include "../model/llava.h"
#include "../util/args.h"
#include "../util/common.h"
#include "../util/jsonl.h"
#include "commands.h"
#include "../data/records.h"

static void usage(void) {
    printf("usage: vlm logprobs --model DIR --data FILE.jsonl [--device auto|cpu|cuda] [--batch N]\n"
           "                    [--out FILE] [--tokenizer FILE] [--images DIR]\n\n"
           "Prints {\"index\", \"logprob\", \"n_response\"} per record: the summed log-probability of the\n"
           "response tokens given the image and the prompt (teacher forcing, fp32 log-softmax).\n\n"
           "  --model DIR       HF LLaVA directory: config.json, *.safetensors, preprocessor_config.json\n"
           "  --data FILE       JSON Lines records: image (optional: a path or a list; or images: [paths]) and\n"
           "                    input_ids + n_response, or prompt (or question) + response (text; needs the\n"
           "                    tokenizer; one \"<image>\" per image in order, or none: then they go after the\n"
           "                    first \"USER: \", else in front, as the chat templates put an image)\n"
           "  --images DIR      root of relative image paths (default: the data file's folder)\n"
           "  --tokenizer FILE  tokenizer.model or tokenizer.json for text records (default: DIR's, .model first)\n"
           "  --device D        auto (default), cpu, cuda\n"
           "  --batch N         records per forward pass (default 8)\n"
           "  --attention A     GPU attention: cudnn (default where built) or flash\n"
           "  --out FILE        write the results here (atomically) instead of stdout\n");
}

int cmd_logprobs(int argc, char **argv) {
    Args a = args_init("vlm logprobs", argc, argv);
    if (args_help(&a)) { usage(); return 0; }
    const char *model_dir = arg_str(&a, "--model", NULL), *data = arg_str(&a, "--data", NULL);
    const char *device = arg_str(&a, "--device", "auto"), *out_path = arg_str(&a, "--out", NULL);
    const char *tok_path = arg_str(&a, "--tokenizer", NULL), *images_dir = arg_str(&a, "--images", NULL);
    backend_set_attention(arg_str(&a, "--attention", NULL));
    int batch_size = (int)arg_int(&a, "--batch", 8);
    args_finish(&a);
    if (!model_dir || !data) fatal("vlm logprobs: --model and --data are required (see --help)");
    if (batch_size < 1) fatal("vlm logprobs: --batch must be at least 1");
    if (images_dir && !file_exists(images_dir)) fatal("vlm logprobs: --images %s: no such folder", images_dir);

    const Backend *be = backend_select(device);
    Llava m;
    llava_load(&m, be, model_dir, (LlavaTrainable){0, 0, 0});
    const LlavaConfig *c = &m.cfg;

    RecordSet rs;
    records_read_logprobs(&rs, data, c, model_dir, tok_path, images_dir);
    PreprocessConfig pcfg = records_tower_preprocess_config(model_dir, &c->vision);

    int max_len = 0, max_images = 1;  // the longest row, the most images a record has
    for (int i = 0; i < rs.n; i++) {
        if (rs.r[i].n > max_len) max_len = rs.r[i].n;
        if (rs.r[i].n_images > max_images) max_images = rs.r[i].n_images;
    }
    const int cap_images = batch_size * max_images;
    LlavaActs acts;
    llava_acts_init(&acts, &m, batch_size, max_len, cap_images, 0, ACTS_INFERENCE);

    const int S = c->vision.image_size;
    int *ids = xmalloc(sizeof(int) * batch_size * max_len), *labels = xmalloc(sizeof(int) * batch_size * max_len);
    int *lengths = xmalloc(sizeof(int) * batch_size), *img_of = xmalloc(sizeof(int) * batch_size);
    int *n_img_of = xmalloc(sizeof(int) * batch_size);
    float *pixels = xmalloc(sizeof(float) * (size_t)cap_images * 3 * S * S);
    const char **img_names = xmalloc(sizeof(char *) * cap_images);
    size_t out_cap = 1 << 16, out_len = 0;
    char *out = xmalloc(out_cap);
    double t0 = now_seconds();
    for (int start = 0; start < rs.n; start += batch_size) {
        int B = rs.n - start < batch_size ? rs.n - start : batch_size, T = 0, NI = 0;
        for (int b = 0; b < B; b++) if (rs.r[start + b].n > T) T = rs.r[start + b].n;
        for (int b = 0; b < B; b++) {
            const LogprobRecord *r = &rs.r[start + b];
            lengths[b] = r->n;
            for (int t = 0; t < T; t++) {
                ids[b * T + t] = t < r->n ? r->ids[t] : 0;
                labels[b * T + t] = (t < r->n && t >= r->n - r->n_response) ? r->ids[t] : -100;
            }
            // the row's images are consecutive batch images (model/llava.h): an earlier run of the same paths is
            // shared, else each is decoded into the next slots
            img_of[b] = -1;
            n_img_of[b] = r->n_images;
            if (!r->n_images) continue;
            for (int i = 0; i + r->n_images <= NI && img_of[b] < 0; i++) {
                int same = 1;
                for (int k = 0; k < r->n_images && same; k++) same = !strcmp(img_names[i + k], r->images[k]);
                if (same) img_of[b] = i;
            }
            if (img_of[b] >= 0) continue;
            img_of[b] = NI;
            for (int k = 0; k < r->n_images; k++, NI++) {
                char err[512];
                Image *im = image_load(r->images[k], pcfg.alpha, err, sizeof(err));
                if (!im) fatal("%s:%d: %s", rs.path, r->line, err);
                int h, w;
                float *px = preprocess_image(&pcfg, im, &h, &w);
                if (h != S || w != S)
                    fatal("%s:%d: the preprocessor gives %dx%d pixels but the vision tower expects %dx%d (check preprocessor_config.json)",
                          rs.path, r->line, w, h, S, S);
                memcpy(pixels + (size_t)NI * 3 * S * S, px, sizeof(float) * 3 * S * S);
                free(px);
                image_free(im);
                img_names[NI] = r->images[k];
            }
        }
        LlavaBatch batch = {.B = B, .T = T, .ids = ids, .labels = labels, .lengths = lengths, .image_of_row = img_of,
                            .images_of_row = n_img_of, .n_images = NI, .pixels = pixels};
        llava_forward(&m, &acts, &batch);
        for (int b = 0; b < B; b++) {
            if (out_len + 128 > out_cap) out = xrealloc(out, out_cap *= 2);
            out_len += (size_t)snprintf(out + out_len, out_cap - out_len, "{\"index\": %d, \"logprob\": %.9g, \"n_response\": %d}\n",
                                        rs.r[start + b].index, acts.row_logp[b], acts.row_count[b]);
        }
        if (!out_path) { fwrite(out, 1, out_len, stdout); fflush(stdout); out_len = 0; }
        double dt = now_seconds() - t0;
        fprintf(stderr, "\rlogprobs: %d/%d records, %.1f records/s", start + B, rs.n, (start + B) / (dt > 0 ? dt : 1e-9));
    }
    fprintf(stderr, "\n");
    if (out_path) write_file_atomic(out_path, out, out_len);
    free(out); free(ids); free(labels); free(lengths); free(img_of); free(n_img_of); free(pixels); free(img_names);
    llava_acts_free(&acts);
    records_free(&rs);
    llava_free(&m);
    return 0;
}
