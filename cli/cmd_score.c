// vlm score: CLIP similarity of each record's image with its text (CLIPScore, 100 x cosine: CLIP-DPO's
// ranking, research/methods.md §2.2) or with a second image (cosine: the MVC pair filter, §1.3); with --encoder,
// the image-image cosine under a CLIP, SigLIP or DINOv2 folder (the released MVC filter's two encoders).
//
// Records (JSON Lines or a JSON array): "image" and "text" -> adds "clip_score"; "image" and "image2" ->
// adds "image_cosine". Image paths are relative to the data file's folder (or --images). Every record is
// written back with its score added, in order, so the output feeds the next filter as it is.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../eval/clipscore.h"
#include "../util/args.h"
#include "../util/common.h"
#include "../util/jsonl.h"
#include "commands.h"

static void usage(void) {
    printf("usage: vlm score (--clip DIR | --encoder DIR) --data FILE [--tokenizer bpe_simple_vocab_16e6.txt.gz] [--images DIR]\n"
           "                 [--device auto|cpu|cuda] [--batch N] [--out FILE]\n\n"
           "CLIP similarity per record, with a CLIPModel folder (e.g. a `vlm train --recipe clip` checkpoint):\n"
           "  {\"image\", \"text\"}    -> \"clip_score\": 100 x cosine of the image and text embeddings (CLIPScore)\n"
           "  {\"image\", \"image2\"}  -> \"image_cosine\": cosine of the two image embeddings\n"
           "or, with --encoder DIR, image-image records only, under a CLIPModel, a SigLIP vision model with its pooling head\n"
           "(siglip, siglip_vision_model: pooler_output) or a DINOv2 (dinov2, dinov2_with_registers: the class token after\n"
           "the final LayerNorm), each with its folder's preprocessor_config.json.\n"
           "Each record is written back (JSON Lines, in order) with its score added.\n\n"
           "  --tokenizer F  the CLIP BPE file (default: DIR/bpe_simple_vocab_16e6.txt.gz)\n"
           "  --images DIR   folder the image paths are relative to (default: the data file's folder)\n"
           "  --batch N      images or texts per forward pass (default 64)\n"
           "  --out FILE     write here (atomically) instead of stdout\n");
}

// Writes the records (JSON Lines, in order) with "image_cosine" under any image encoder (eval/clipscore.h).
static void score_image_pairs(const char *dir, cJSON **recs, char **img, char **img2, int n, const Backend *be, int batch,
                              const char *out_path) {
    ImageEncoder e;
    image_encoder_open(&e, dir, be, batch);
    float *ea = xmalloc(sizeof(float) * (size_t)n * e.P), *eb = xmalloc(sizeof(float) * (size_t)n * e.P);
    image_encoder_images(&e, (const char *const *)img, n, ea);
    image_encoder_images(&e, (const char *const *)img2, n, eb);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = out_path ? open_memstream(&buf, &len) : stdout;
    if (!f) fatal("open_memstream failed");
    for (int i = 0; i < n; i++) {
        cJSON_AddNumberToObject(recs[i], "image_cosine", clipscore_cosine(ea + (size_t)i * e.P, eb + (size_t)i * e.P, e.P));
        char *line = cJSON_PrintUnformatted(recs[i]);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(recs[i]);
    }
    if (out_path) {
        fclose(f);
        write_file_atomic(out_path, buf, len);
        free(buf);
    }
    fprintf(stderr, "score: %d image pairs under the %s encoder %s\n", n, e.name, dir);
    free(ea); free(eb);
    image_encoder_close(&e);
}

int cmd_score(int argc, char **argv) {
    Args a = args_init("vlm score", argc, argv);
    if (args_help(&a)) { usage(); return 0; }
    const char *clip_dir = arg_str(&a, "--clip", NULL), *data = arg_str(&a, "--data", NULL);
    const char *enc_dir = arg_str(&a, "--encoder", NULL);
    const char *tok = arg_str(&a, "--tokenizer", NULL), *images = arg_str(&a, "--images", NULL);
    const char *device = arg_str(&a, "--device", "auto"), *out_path = arg_str(&a, "--out", NULL);
    long batch = arg_int(&a, "--batch", 64);
    args_finish(&a);
    if ((!clip_dir == !enc_dir) || !data) fatal("vlm score: --data and one of --clip and --encoder are required (see --help)");
    if (enc_dir && tok) fatal("vlm score: --tokenizer is for --clip's image-text scores; --encoder scores image pairs");
    if (batch < 1 || batch > 65536) fatal("vlm score: --batch must be between 1 and 65536");

    // read every record first: bad records fail before the model loads
    char *dir = images ? xstrdup(images) : path_dirname(data);
    JsonlReader jr;
    jsonl_open(&jr, data);
    cJSON **recs = NULL;
    char **img = NULL, **other = NULL;
    int n = 0, cap = 0, n_text = 0, n_image = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(j, "image"), *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
        const cJSON *im2 = cJSON_GetObjectItemCaseSensitive(j, "image2");
        if (!cJSON_IsString(im)) fatal("%s:%d: needs \"image\" (a path)", data, jr.line);
        if (cJSON_IsString(tx) == cJSON_IsString(im2)) fatal("%s:%d: needs exactly one of \"text\" and \"image2\"", data, jr.line);
        if (enc_dir && !cJSON_IsString(im2))
            fatal("%s:%d: --encoder scores image pairs: the record needs \"image2\" (image-text scores take --clip)", data, jr.line);
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            recs = xrealloc(recs, sizeof(*recs) * cap);
            img = xrealloc(img, sizeof(*img) * cap);
            other = xrealloc(other, sizeof(*other) * cap);
        }
        recs[n] = j;
        img[n] = path_join(dir, im->valuestring);
        other[n] = cJSON_IsString(tx) ? xstrdup(tx->valuestring) : path_join(dir, im2->valuestring);
        n_text += cJSON_IsString(tx);
        n_image += !cJSON_IsString(tx);
        n++;
    }
    jsonl_close(&jr);
    if (n == 0) fatal("%s: no records", data);

    if (enc_dir) {
        score_image_pairs(enc_dir, recs, img, other, n, backend_select(device), (int)batch, out_path);
        for (int i = 0; i < n; i++) free(img[i]), free(other[i]);
        free(recs); free(img); free(other); free(dir);
        return 0;
    }
    ClipScorer s;
    clipscore_open(&s, clip_dir, tok, backend_select(device), (int)batch);
    float *ea = xmalloc(sizeof(float) * (size_t)n * s.P);
    clipscore_images(&s, (const char *const *)img, n, ea);
    // the second side: texts and images in two passes, each in record order
    const char **texts = xmalloc(sizeof(char *) * n), **images2 = xmalloc(sizeof(char *) * n);
    int kt = 0, ki = 0;
    for (int i = 0; i < n; i++) {
        if (cJSON_GetObjectItemCaseSensitive(recs[i], "text")) texts[kt++] = other[i];
        else images2[ki++] = other[i];
    }
    float *et = xmalloc(sizeof(float) * (size_t)(kt ? kt : 1) * s.P), *ei = xmalloc(sizeof(float) * (size_t)(ki ? ki : 1) * s.P);
    if (kt) clipscore_texts(&s, texts, kt, et);
    if (ki) clipscore_images(&s, images2, ki, ei);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = out_path ? open_memstream(&buf, &len) : stdout;
    if (!f) fatal("open_memstream failed");
    kt = ki = 0;
    for (int i = 0; i < n; i++) {
        const float *x = ea + (size_t)i * s.P;
        if (cJSON_GetObjectItemCaseSensitive(recs[i], "text"))
            cJSON_AddNumberToObject(recs[i], "clip_score", 100.0 * clipscore_cosine(x, et + (size_t)kt++ * s.P, s.P));
        else cJSON_AddNumberToObject(recs[i], "image_cosine", clipscore_cosine(x, ei + (size_t)ki++ * s.P, s.P));
        char *line = cJSON_PrintUnformatted(recs[i]);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(recs[i]);
        free(img[i]);
        free(other[i]);
    }
    if (out_path) {
        fclose(f);
        write_file_atomic(out_path, buf, len);
        free(buf);
    }
    fprintf(stderr, "score: %d records (%d image-text, %d image-image)\n", n, n_text, n_image);
    free(ea); free(et); free(ei); free(texts); free(images2); free(recs); free(img); free(other); free(dir);
    clipscore_close(&s);
    return 0;
}
