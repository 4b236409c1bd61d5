// vlm tokenize: JSONL {"text": ...} on stdin -> {"ids": [...]} on stdout (or the reverse with --decode),
// with a model's tokenizer (SentencePiece tokenizer.model or Hugging Face tokenizer.json, data/tokenizer.h) or the
// CLIP BPE (bpe_simple_vocab_16e6.txt.gz).
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer_clip.h"
#include "../data/tokenizer.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

static const char *HELP =
    "usage: vlm tokenize --tokenizer FILE [--kind auto|sp|json|clip] [--bos] [--eos] [--raw] [--context N]\n"
    "                    [--pad-id N] [--decode [--keep-special]]\n"
    "\n"
    "Reads JSON lines {\"text\": \"...\"} from stdin and writes one {\"ids\": [...]} per line to stdout.\n"
    "Blank lines are skipped. A line that is not such an object stops the command with an error naming the line.\n"
    "\n"
    "  --tokenizer FILE  a SentencePiece tokenizer.model (LLaMA/Vicuna/LLaVA), a Hugging Face tokenizer.json with\n"
    "                    a byte-level BPE (Qwen2, LLaVA-Interleave-Qwen) or the CLIP merges file\n"
    "                    bpe_simple_vocab_16e6.txt.gz\n"
    "  --kind K          auto (default: gzip or .txt -> clip, .json or a JSON object -> json, else sp), sp, json\n"
    "                    or clip\n"
    "  --bos, --eos      add the begin/end token (sp: <s>=1 / </s>=2; clip: 49406 / 49407; json: --bos adds the\n"
    "                    post-processor's tokens, as add_special_tokens=True does (none for Qwen2), --eos the\n"
    "                    eos_token of the tokenizer_config.json beside the file)\n"
    "  --raw             sp: do not split out special tokens written in the text (<s>, </s>, <unk>, <image>,\n"
    "                    <pad>), i.e. the sentencepiece package's encode(); by default they map to their ids\n"
    "                    as in llava-hf's tokenizer (<image> = 32000, <pad> = 32001)\n"
    "  --context N       clip: exactly N ids as OpenAI's clip.tokenize(truncate=True): [49406] + tokens +\n"
    "                    [49407], cut to N with the last id forced to 49407, padded with --pad-id (default 0;\n"
    "                    HF's CLIP repos pad with 49407); --bos/--eos are implied\n"
    "  --decode          read {\"ids\": [...]} lines and write {\"text\": \"...\"}; special tokens are dropped\n"
    "                    unless --keep-special\n"
    "\n"
    "sp encoding follows llava-hf/llava-1.5-7b-hf's tokenizer (legacy: each text piece between special tokens\n"
    "gets the dummy-prefix space); json follows the tokenizers library (added tokens, NFC, the Split pattern,\n"
    "byte-level BPE; see data/tokenizer_hf.h); clip cleans text as OpenAI's tokenizer does (data/tokenizer_clip.h).\n"
    "A NUL character inside a JSON string ends the text there.\n";

static void print_ids(const int *ids, int n) {
    fputs("{\"ids\":[", stdout);
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    fputs("]}\n", stdout);
}

static int detect_clip(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;  // the loader reports the missing file
    unsigned char m[2] = {0, 0};
    size_t got = fread(m, 1, 2, f);
    fclose(f);
    size_t n = strlen(path);
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) return 1;
    return n >= 4 && !strcmp(path + n - 4, ".txt");
}

int cmd_tokenize(int argc, char **argv) {
    Args a = args_init("vlm tokenize", argc, argv);
    if (args_help(&a)) { fputs(HELP, stdout); return 0; }
    const char *path = arg_str(&a, "--tokenizer", NULL);
    const char *kind = arg_str(&a, "--kind", "auto");
    int bos = arg_flag(&a, "--bos"), eos = arg_flag(&a, "--eos"), raw = arg_flag(&a, "--raw");
    int decode = arg_flag(&a, "--decode"), keep_special = arg_flag(&a, "--keep-special");
    long context = arg_int(&a, "--context", 0);
    long pad_id = arg_int(&a, "--pad-id", 0);
    args_finish(&a);
    if (!path) fatal("vlm tokenize: --tokenizer FILE is required (see vlm tokenize --help)");
    int is_clip;
    if (!strcmp(kind, "auto")) is_clip = detect_clip(path);
    else if (!strcmp(kind, "sp") || !strcmp(kind, "json")) is_clip = 0;  // data/tokenizer.c tells the two apart
    else if (!strcmp(kind, "clip")) is_clip = 1;
    else fatal("vlm tokenize: --kind must be auto, sp, json or clip, got '%s'", kind);
    if (context && !is_clip) fatal("vlm tokenize: --context is for the CLIP tokenizer only");
    if (context < 0 || context > 1000000) fatal("vlm tokenize: --context %ld is out of range", context);
    if (context && context < 2) fatal("vlm tokenize: --context must be at least 2 (room for 49406 and 49407)");
    if (raw && is_clip) fatal("vlm tokenize: --raw is for the SentencePiece tokenizer only");
    ClipTokenizer *clip = is_clip ? cliptok_load(path) : NULL;
    Tokenizer *tok = is_clip ? NULL : tokenizer_load(path);
    if (tok && strcmp(kind, "auto") && !strcmp(kind, "sp") != (tok->sp != NULL))
        fatal("vlm tokenize: %s is %s, not what --kind %s says", path, tok->sp ? "a SentencePiece model" : "a tokenizer.json", kind);
    if (raw && tok && !tok->sp) fatal("vlm tokenize: --raw is for the SentencePiece tokenizer only");
    int vocab = is_clip ? clip->vocab_size : tok->vocab_size;

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int *ctx_ids = context ? xmalloc(sizeof(int) * (size_t)context) : NULL;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        int blank = 1;
        for (ssize_t i = 0; i < len; i++)
            if (line[i] != ' ' && line[i] != '\t' && line[i] != '\n' && line[i] != '\r') blank = 0;
        if (blank) continue;
        cJSON *obj = cJSON_ParseWithLength(line, (size_t)len);
        if (!obj || !cJSON_IsObject(obj))
            fatal("vlm tokenize: stdin line %ld: not a JSON object (expected {\"%s\": ...})", lineno,
                  decode ? "ids" : "text");
        if (decode) {
            cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "ids");
            if (!cJSON_IsArray(arr)) fatal("vlm tokenize: stdin line %ld: no \"ids\" array", lineno);
            int n = cJSON_GetArraySize(arr), k = 0;
            int *ids = xmalloc(sizeof(int) * (size_t)(n + 1));
            cJSON *it;
            cJSON_ArrayForEach(it, arr) {
                double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
                if (!cJSON_IsNumber(it) || v < 0 || v >= vocab || v != (double)(int)v)  // range first: no UB cast
                    fatal("vlm tokenize: stdin line %ld: ids[%d] is not a token id in 0..%d", lineno, k, vocab - 1);
                ids[k++] = (int)v;
            }
            char *text = is_clip ? cliptok_decode(clip, ids, n, !keep_special, NULL)
                                 : tokenizer_decode(tok, ids, n, !keep_special, NULL);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "text", text);
            char *s = cJSON_PrintUnformatted(o);
            puts(s);
            cJSON_free(s);
            cJSON_Delete(o);
            free(text);
            free(ids);
        } else {
            cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
            if (!cJSON_IsString(t)) fatal("vlm tokenize: stdin line %ld: no \"text\" string", lineno);
            const char *text = t->valuestring;
            size_t tl = strlen(text);
            int *ids, n;
            if (is_clip && context) {
                cliptok_tokenize(clip, text, tl, (int)context, (int)pad_id, ctx_ids);
                print_ids(ctx_ids, (int)context);
            } else if (is_clip) {
                int *body;
                int m = cliptok_encode(clip, text, tl, &body);
                ids = xmalloc(sizeof(int) * (size_t)(m + 2));
                n = 0;
                if (bos) ids[n++] = CLIP_SOT;
                memcpy(ids + n, body, sizeof(int) * (size_t)m);
                n += m;
                if (eos) ids[n++] = CLIP_EOT;
                print_ids(ids, n);
                free(body);
                free(ids);
            } else {
                int flags = (bos ? TOK_BOS : 0) | (eos ? TOK_EOS : 0) | (raw ? TOK_RAW : 0);
                n = tokenizer_encode(tok, text, tl, flags, &ids, NULL);
                print_ids(ids, n);
                free(ids);
            }
        }
        cJSON_Delete(obj);
    }
    free(line);
    free(ctx_ids);
    tokenizer_free(tok);
    cliptok_free(clip);
    if (fflush(stdout) != 0) fatal("vlm tokenize: cannot write to stdout");
    return 0;
}
