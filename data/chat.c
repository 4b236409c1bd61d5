// LLaVA chat templates (see chat.h).
#include "chat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "unicode.h"

const char *const CHAT_VICUNA_SYSTEM =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions.";

// Kevinz-code/SeVa seva/llava/conversation.py l.335-337 (conv_llava_v1), as haotian-liu/LLaVA has it.
const char *const CHAT_LLAVA_V1_SYSTEM =
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.";

int chat_template_from_name(const char *name) {
    if (!strcmp(name, "vicuna_v1")) return CHAT_VICUNA_V1;
    if (!strcmp(name, "llava_hf")) return CHAT_LLAVA_HF;
    if (!strcmp(name, "llava_hf_image_last")) return CHAT_LLAVA_HF_IMAGE_LAST;
    if (!strcmp(name, "llava_interleave")) return CHAT_LLAVA_INTERLEAVE;
    return -1;
}

const char *chat_template_name(ChatTemplate t) {
    return t == CHAT_LLAVA_HF ? "llava_hf" : t == CHAT_LLAVA_HF_IMAGE_LAST ? "llava_hf_image_last"
         : t == CHAT_LLAVA_INTERLEAVE ? "llava_interleave" : "vicuna_v1";
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

// The first user message without any "<image>" (each removed with one "\n" right after it, then the message
// stripped of surrounding whitespace, as LLaVA does when it moves the image to the front). Unchanged if it has none.
static void put_user_without_image(StrBuf *b, const char *q) {
    if (!strstr(q, "<image>")) { strbuf_put(b, q, strlen(q)); return; }
    StrBuf t = {0};
    strbuf_put(&t, "", 0);
    for (const char *p = q; *p;) {
        if (!strncmp(p, "<image>", 7)) { p += 7; if (*p == '\n') p++; continue; }
        strbuf_putc(&t, *p++);
    }
    size_t a = 0, e = t.len;
    while (a < e && (t.data[a] == ' ' || t.data[a] == '\n' || t.data[a] == '\t' || t.data[a] == '\r')) a++;
    while (e > a && (t.data[e - 1] == ' ' || t.data[e - 1] == '\n' || t.data[e - 1] == '\t' || t.data[e - 1] == '\r')) e--;
    strbuf_put(b, t.data + a, e - a);
    strbuf_free(&t);
}

static void puts_(StrBuf *b, const char *s) { strbuf_put(b, s, strlen(s)); }

// How many "<image>" the user messages hold.
static int user_placeholders(const ChatTurn *turns, int n_turns) {
    int n = 0;
    for (int k = 0; k < n_turns; k++)
        for (const char *p = turns[k].user ? strstr(turns[k].user, "<image>") : NULL; p; p = strstr(p + 7, "<image>")) n++;
    return n;
}

// Several images whose placeholders the user wrote (one per image) stay where they are, interleaved with the text
// (LLaVA-NeXT-Interleave's data); otherwise the images go in front of the first user message, as one image does.
static int images_in_place(const ChatOptions *opt, const ChatTurn *turns, int n_turns) {
    return opt->image > 1 && user_placeholders(turns, n_turns) == opt->image;
}

// The first user message's front placement: `each` once per image (none for the image-free variant).
static void put_images(StrBuf *b, const ChatOptions *opt, const char *each) {
    for (int i = 0; i < opt->image; i++) puts_(b, each);
}

// A user message: verbatim when the images stay in place, else turn 0 without its placeholders.
static void put_user(StrBuf *b, const ChatTurn *t, int k, int in_place) {
    if (k == 0 && !in_place) put_user_without_image(b, t->user);
    else puts_(b, t->user);
}

// llava_interleave: the chat template of llava-hf's Interleave processors, as transformers' tests of the llava-hf Qwen
// processors carry it (tests/models/llava_onevision/test_processor_llava_onevision.py, prepare_processor_dict) and
// as the llava-hf repositories got it with transformers PR #31691 (its docs give the llava-interleave prompt as
// "<|im_start|>user <image>\nWhat is shown in this image?<|im_end|><|im_start|>assistant"; the hub file itself could
// not be read from here):
//   {% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}
//   {% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}
//   {# Render all video then #}{% for content in ... 'video' %}{{ '<video>' }}{% endfor %}{# Render all text next #}
//   {% if message['role'] != 'assistant' %}{% for content in ... 'text' %}{{ '\n' + content['text'] }}{% endfor %}
//   {% else %}{% for content in ... 'text' %}{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}
//   {% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}
//   {% endif %}
// S-VCO (data_collator.py, DatasetSVCOForLlavaInterleave) builds the messages as an optional system message, the
// user message [text] + [image] * n, the assistant message, and labels the generation span.
static int render_interleave(const ChatOptions *opt, const ChatTurn *turns, int n_turns, StrBuf *text, size_t *spans,
                             int *n_spans) {
    const int in_place = images_in_place(opt, turns, n_turns);
    if (opt->system && opt->system[0]) {
        puts_(text, "<|im_start|>system \n");
        puts_(text, opt->system);
        puts_(text, "<|im_end|>");
    }
    for (int k = 0; k < n_turns; k++) {
        puts_(text, "<|im_start|>user ");
        if (k == 0 && !in_place) put_images(text, opt, "<image>");
        puts_(text, "\n");
        put_user(text, &turns[k], k, in_place);
        puts_(text, "<|im_end|>");
        if (!turns[k].assistant) { puts_(text, "<|im_start|>assistant\n"); break; }
        puts_(text, "<|im_start|>assistant ");
        spans[2 * *n_spans] = text->len;
        puts_(text, "\n");
        puts_(text, turns[k].assistant);
        spans[2 * *n_spans + 1] = text->len;
        (*n_spans)++;
        puts_(text, "<|im_end|>");
    }
    return 0;
}

// Renders the conversation's text and records the byte ranges of the answers (what the mask labels) into
// spans (2 per answer). Returns 0, or -1 with a message in err (text left empty).
static int render(const ChatOptions *opt, const ChatTurn *turns, int n_turns, StrBuf *text, size_t *spans,
                  int *n_spans, char *err, size_t errlen) {
    if (n_turns < 1) return fail(err, errlen, "the conversation has no turns");
    if (n_turns > 64) return fail(err, errlen, "%d turns; at most 64 are supported", n_turns);
    for (int k = 0; k < n_turns; k++) {
        if (!turns[k].user) return fail(err, errlen, "turn %d has no user message", k + 1);
        if (!turns[k].assistant && k + 1 < n_turns)
            return fail(err, errlen, "turn %d has no answer; only the last turn may be left open for generation", k + 1);
    }
    if (opt->image < 0) return fail(err, errlen, "%d images", opt->image);
    const int in_text = user_placeholders(turns, n_turns), in_place = images_in_place(opt, turns, n_turns);
    if (opt->image > 0 && in_text != 0 && in_text != opt->image)
        return fail(err, errlen, "the conversation has %d <image> placeholders for %d image%s (give one per image, or none "
                    "to put the images in front of the first message)", in_text, opt->image, opt->image == 1 ? "" : "s");
    strbuf_put(text, "", 0);
    *n_spans = 0;
    if (opt->tmpl == CHAT_LLAVA_INTERLEAVE) return render_interleave(opt, turns, n_turns, text, spans, n_spans);
    // An empty system prompt is no system line at all, in every template: LLaVA's conversation.py would write
    // " USER:" for vicuna_v1, whose leading space tokenizes to a lone "▁" that no released model saw (issue 14).
    const char *system = opt->system ? opt->system : opt->tmpl == CHAT_VICUNA_V1 ? CHAT_VICUNA_SYSTEM : "";
    if (system[0]) {
        puts_(text, system);
        puts_(text, " ");
    }
    for (int k = 0; k < n_turns; k++) {
        puts_(text, "USER: ");
        const int last = opt->tmpl == CHAT_LLAVA_HF_IMAGE_LAST;
        if (k == 0 && !in_place && !last) put_images(text, opt, "<image>\n");
        put_user(text, &turns[k], k, in_place);
        if (k == 0 && !in_place && last) put_images(text, opt, "\n<image>");
        puts_(text, " ");
        if (!turns[k].assistant) { puts_(text, "ASSISTANT:"); break; }
        // vicuna_v1's labels are LLaVA's (llava/train/train.py preprocess_v1): everything after the tokens of
        // "... ASSISTANT:", so the separator's space is in the answer's span and a lone "▁" before an answer that
        // starts with a digit ("▁", "3") is a label. llava_hf's are transformers' assistant mask: the generation
        // span starts at the answer's first character.
        puts_(text, "ASSISTANT:");
        if (opt->tmpl == CHAT_VICUNA_V1) spans[2 * *n_spans] = text->len;
        puts_(text, " ");
        if (opt->tmpl != CHAT_VICUNA_V1) spans[2 * *n_spans] = text->len;
        puts_(text, turns[k].assistant);
        puts_(text, opt->tmpl == CHAT_VICUNA_V1 ? "</s>" : " ");
        spans[2 * *n_spans + 1] = text->len;
        (*n_spans)++;
    }
    return 0;
}

char *chat_render(const ChatOptions *opt, const ChatTurn *turns, int n_turns, char *err, size_t errlen) {
    StrBuf text = {0};
    size_t spans[2 * 64];
    int n_spans;
    if (render(opt, turns, n_turns, &text, spans, &n_spans, err, errlen) != 0) { strbuf_free(&text); return NULL; }
    return text.data;
}

// Cuts a row (mask: *n tokens, *labels of them labels, image ids before img_end) to L tokens from the end:
// only labels may go, and one must stay. Returns 0 (nothing to do when *n <= L), or -1 with a message.
static int cut_to(const uint8_t *mask, int *n, int *labels, int img_end, int L, const char *what, char *err, size_t errlen) {
    if (*n <= L) return 0;
    if (img_end > L)
        return fail(err, errlen, "the conversation is %d tokens; truncating it to %s %d would cut image tokens (they end "
                    "at token %d)", *n, what, L, img_end);
    for (int i = L; i < *n; i++)
        if (!mask[i])
            return fail(err, errlen, "the conversation is %d tokens; truncating it to %s %d would cut the prompt (token %d "
                        "is not part of an answer)", *n, what, L, i);
    int kept = 0;
    for (int i = 0; i < L; i++) kept += mask[i];
    if (*labels > 0 && kept == 0)
        return fail(err, errlen, "the conversation is %d tokens; truncating it to %s %d leaves no answer token", *n, what, L);
    *n = L;
    *labels = kept;
    return 0;
}

int chat_build(const Tokenizer *tok, const ChatOptions *opt, const ChatTurn *turns, int n_turns, ChatTokens *out,
               char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (opt->n_image_tokens < 1) return fail(err, errlen, "n_image_tokens must be at least 1, got %d", opt->n_image_tokens);
    StrBuf text = {0};
    size_t spans[2 * 64];
    int n_spans;
    if (render(opt, turns, n_turns, &text, spans, &n_spans, err, errlen) != 0) { strbuf_free(&text); return -1; }
    int training = turns[n_turns - 1].assistant != NULL;  // render() checked n_turns >= 1
    int extra_eos = (opt->tmpl == CHAT_LLAVA_HF || opt->tmpl == CHAT_LLAVA_HF_IMAGE_LAST) && training;
    const char *missing = opt->image && tok->image_id < 0 ? "<image> token"
                        : extra_eos && tok->eos_id < 0 ? "end token to close the answer" : NULL;
    if (missing) {
        strbuf_free(&text);
        return fail(err, errlen, "the tokenizer %s has no %s", tok->path, missing);
    }
    int *ids, *tspan;
    int n = tokenizer_encode(tok, text.data, text.len, TOK_BOS, &ids, &tspan);
    // Labels: for each answer, every token from the first one that overlaps it to the last one that does.
    uint8_t *mask = xcalloc((size_t)n + 1, 1);
    for (int s = 0; s < n_spans; s++) {
        int a = (int)spans[2 * s], b = (int)spans[2 * s + 1], t0 = -1, t1 = -1;
        for (int i = 0; i < n; i++)
            if (tspan[2 * i] < b && tspan[2 * i + 1] > a) { if (t0 < 0) t0 = i; t1 = i; }
        for (int i = t0; i >= 0 && i <= t1; i++) mask[i] = 1;
    }
    free(tspan);
    if (extra_eos) {
        ids = xrealloc(ids, sizeof(int) * (size_t)(n + 1));
        ids[n] = tok->eos_id;
        mask[n] = 1;
        n++;
    }
    // The images: exactly one placeholder id per image, none for the image-free variant.
    int n_img = 0, img_at = -1, img_end = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] == tok->image_id) { if (img_at < 0) img_at = i; n_img++; img_end = i + 1; }
    if (n_img != opt->image) {
        free(ids); free(mask); strbuf_free(&text);
        return fail(err, errlen, "the conversation has %d <image> placeholders, expected %d (\"<image>\" may only "
                    "appear in user messages: the first one for one image, anywhere for one each of several)", n_img, opt->image);
    }
    int labels = 0;
    for (int i = 0; i < n; i++) labels += mask[i];
    if (opt->max_text_len > 0 && cut_to(mask, &n, &labels, img_end, opt->max_text_len, "max_text_len", err, errlen)) {
        free(ids); free(mask); strbuf_free(&text);
        return -1;
    }
    if (n_img && opt->n_image_tokens > 1) {  // expand each placeholder to its image's feature tokens
        const int m = opt->n_image_tokens, n2 = n + n_img * (m - 1);
        int *ids2 = xmalloc(sizeof(int) * (size_t)n2);
        uint8_t *mask2 = xcalloc((size_t)n2, 1);  // image tokens are never labels
        for (int i = 0, o = 0; i < n; i++) {
            if (ids[i] != tok->image_id) { ids2[o] = ids[i]; mask2[o++] = mask[i]; continue; }
            for (int r = 0; r < m; r++) ids2[o++] = tok->image_id;
            img_end = o;
        }
        free(ids); free(mask);
        ids = ids2; mask = mask2; n = n2; n_img *= m;
    }
    if (opt->max_len > 0 && cut_to(mask, &n, &labels, img_end, opt->max_len, "max_len", err, errlen)) {
        free(ids); free(mask); strbuf_free(&text);
        return -1;
    }
    out->ids = ids;
    out->mask = mask;
    out->n = n;
    out->n_labels = labels;
    out->image_start = n_img ? img_at : -1;
    out->n_image = n_img;
    out->text = text.data;
    return 0;
}

void chat_tokens_free(ChatTokens *c) {
    free(c->ids);
    free(c->mask);
    free(c->text);
    memset(c, 0, sizeof(*c));
}
