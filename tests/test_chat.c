// Chat templates against reference ids and masks (tests/ref/make_tokenizer_fixtures.py: vicuna_v1 as
// haotian-liu/LLaVA renders it, llava_hf as transformers + S-VCO's collator build it;
// tests/ref/make_hf_tokenizer_fixtures.py: llava_interleave as transformers renders it), plus the mask,
// image-free, image expansion and truncation rules of data/chat.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/chat.h"
#include "../data/unicode.h"
#include "../util/common.h"
#include "test.h"
#include "test_jsonl.h"

#define CHAT_FIXTURES "tests/fixtures/tokenizers/chat.jsonl"
#define CHAT_INTERLEAVE_FIXTURES "tests/fixtures/tokenizers/chat_interleave.jsonl"

static Tokenizer *load_sp(void) {
    char *p = path_join(test_shared_data(), "tokenizers/llama2_tokenizer.model");
    Tokenizer *t = tokenizer_load(p);
    free(p);
    return t;
}

static ChatOptions opts(ChatTemplate tmpl, int image) {
    ChatOptions o = {.tmpl = tmpl, .image = image, .n_image_tokens = 1};
    return o;
}

// Every conversation of a fixture file: rendered text, ids and mask.
static void check_chat_fixtures(const Tokenizer *tok, const char *path, int min_rows) {
    int n;
    cJSON **rows = jsonl_read(path, &n);
    EXPECT(n >= min_rows);
    for (int r = 0; r < n; r++) {
        const cJSON *row = rows[r];
        const char *tname = cJSON_GetObjectItemCaseSensitive(row, "template")->valuestring;
        const cJSON *sys = cJSON_GetObjectItemCaseSensitive(row, "system");
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(row, "turns");
        ChatOptions o = opts((ChatTemplate)chat_template_from_name(tname),
                             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "image")));
        o.system = cJSON_IsString(sys) ? sys->valuestring : NULL;
        ChatTurn t[8];
        int nt = 0;
        const cJSON *turn;
        cJSON_ArrayForEach(turn, turns) {
            t[nt].user = cJSON_GetArrayItem(turn, 0)->valuestring;
            const cJSON *a = cJSON_GetArrayItem(turn, 1);
            t[nt].assistant = cJSON_IsString(a) ? a->valuestring : NULL;
            nt++;
        }
        ChatTokens c;
        char err[300];
        int rc = chat_build(tok, &o, t, nt, &c, err, sizeof(err));
        EXPECTF(rc == 0, "%s row %d: %s", path, r, err);
        if (rc) continue;
        const char *want_text = cJSON_GetObjectItemCaseSensitive(row, "text")->valuestring;
        EXPECTF(!strcmp(c.text, want_text), "row %d (%s): text\n'%s'\nexpected\n'%s'", r, tname, c.text, want_text);
        char what[64];
        snprintf(what, sizeof(what), "row %d (%s) ids", r, tname);
        EXPECT_IDS(c.ids, c.n, cJSON_GetObjectItemCaseSensitive(row, "ids"), what);
        int *mask = xmalloc(sizeof(int) * (size_t)(c.n + 1));
        for (int i = 0; i < c.n; i++) mask[i] = c.mask[i];
        snprintf(what, sizeof(what), "row %d (%s) mask", r, tname);
        EXPECT_IDS(mask, c.n, cJSON_GetObjectItemCaseSensitive(row, "mask"), what);
        free(mask);
        chat_tokens_free(&c);
    }
    jsonl_free(rows, n);
}

TEST(chat_fixtures) {
    Tokenizer *tok = load_sp();
    check_chat_fixtures(tok, CHAT_FIXTURES, 20);
    tokenizer_free(tok);
}

// LLaVA-Interleave's template with Qwen's tokenizer.json, against transformers' rendering and assistant masks: the
// image placeholder before the "\n" of the text, <|im_end|> never a label, no EOS added, image-free rows as S-VCO's.
TEST(chat_interleave_fixtures) {
    char *p = path_join(test_shared_data(), "tokenizers/qwen2/tokenizer.json");
    Tokenizer *tok = tokenizer_load(p);
    EXPECT_INT_EQ(tok->image_id, 151646);
    EXPECT_INT_EQ(tok->eos_id, 151645);  // <|im_end|>, from the tokenizer_config.json beside it
    check_chat_fixtures(tok, CHAT_INTERLEAVE_FIXTURES, 15);
    // 729 image tokens (SigLIP-so400m/384) replace the one placeholder; the labels stay the answer's
    ChatOptions o = opts(CHAT_LLAVA_INTERLEAVE, 1);
    o.n_image_tokens = 729;
    ChatTurn t = {"Is there a dog?", "No."};
    ChatTokens c;
    char err[300];
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0);
    EXPECT(c.n_image == 729 && c.image_start == 3 && c.n_labels == 3 && c.ids[c.n - 1] == 151645 && !c.mask[c.n - 1]);
    chat_tokens_free(&c);
    tokenizer_free(tok);
    free(p);
    // a tokenizer.json without a tokenizer_config.json has no end token: llava_hf's answers need one
    tok = tokenizer_load("tests/fixtures/tokenizers/tiny_tokenizer.json");
    o = opts(CHAT_LLAVA_HF, 1);
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "tiny_tokenizer.json has no end token to close the answer"), "message: %s", err);
    o = opts(CHAT_LLAVA_INTERLEAVE, 1);  // this template closes answers with <|im_end|> in the text
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0);
    chat_tokens_free(&c);
    tokenizer_free(tok);
}

// The labels are exactly the answer's tokens (with the space before it, as its first "▁Word" piece) and the end
// token: the tail of the sequence equals encode(answer) + </s>, and nothing before it is labelled.
TEST(chat_response_mask) {
    Tokenizer *tok = load_sp();
    const char *answers[] = {"A red circle on a white background.", "No.", "Two stars,\nthree circles.", "yes"};
    for (int tm = 0; tm < 2; tm++) {
        for (size_t k = 0; k < sizeof(answers) / sizeof(answers[0]); k++) {
            ChatOptions o = opts((ChatTemplate)tm, 1);
            ChatTurn t = {"What is shown in this image?", answers[k]};
            ChatTokens c;
            char err[300];
            EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0);
            // vicuna_v1 answers end with "</s>" right after the text; llava_hf with a space, then the EOS
            StrBuf a = {0};
            strbuf_put(&a, answers[k], strlen(answers[k]));
            if (tm == CHAT_LLAVA_HF) strbuf_putc(&a, ' ');
            int *ids;
            int m = tokenizer_encode(tok, a.data, a.len, TOK_EOS, &ids, NULL);
            EXPECT_INT_EQ(c.n_labels, m);
            for (int i = 0; i < c.n; i++) {
                int in_tail = i >= c.n - m;
                EXPECTF(c.mask[i] == in_tail, "template %d answer %zu: mask[%d] = %d", tm, k, i, c.mask[i]);
                if (in_tail) EXPECT_INT_EQ(c.ids[i], ids[i - (c.n - m)]);
            }
            EXPECT_INT_EQ(c.ids[c.n - 1], 2);
            EXPECT_INT_EQ(c.ids[0], 1);
            EXPECT_INT_EQ(c.mask[c.image_start], 0);
            free(ids);
            strbuf_free(&a);
            chat_tokens_free(&c);
        }
    }
    tokenizer_free(tok);
}

// S-VCO's image-free rows: the same conversation without "<image>\n", the same answer tokens.
TEST(chat_image_free) {
    Tokenizer *tok = load_sp();
    for (int tm = 0; tm < 2; tm++) {
        ChatTurn t = {"Is there a blue square?", "No, there is a red circle."};
        ChatOptions oi = opts((ChatTemplate)tm, 1), on = opts((ChatTemplate)tm, 0);
        ChatTokens ci, cn;
        char err[300];
        EXPECT(chat_build(tok, &oi, &t, 1, &ci, err, sizeof(err)) == 0);
        EXPECT(chat_build(tok, &on, &t, 1, &cn, err, sizeof(err)) == 0);
        // text: identical but for the placeholder
        const char *p = strstr(ci.text, "<image>\n");
        EXPECT(p != NULL);
        if (p) {
            size_t pre = (size_t)(p - ci.text);
            EXPECT(strlen(cn.text) + 8 == strlen(ci.text));
            EXPECT(!strncmp(cn.text, ci.text, pre) && !strcmp(cn.text + pre, p + 8));
        }
        EXPECT_INT_EQ(cn.n_image, 0);
        EXPECT_INT_EQ(cn.image_start, -1);
        for (int i = 0; i < cn.n; i++) EXPECT(cn.ids[i] != tok->image_id);
        EXPECT_INT_EQ(ci.n_image, 1);
        // same labelled tokens at the end
        EXPECT_INT_EQ(cn.n_labels, ci.n_labels);
        for (int i = 1; i <= ci.n_labels; i++) {
            EXPECT_INT_EQ(cn.ids[cn.n - i], ci.ids[ci.n - i]);
            EXPECT_INT_EQ(cn.mask[cn.n - i], 1);
        }
        chat_tokens_free(&ci);
        chat_tokens_free(&cn);
    }
    // "<image>" written in the question is moved to the front (or dropped for the image-free variant).
    ChatTurn moved = {"What is this?\n<image>", "A cat."}, plain = {"What is this?", "A cat."};
    ChatOptions o = opts(CHAT_VICUNA_V1, 1);
    ChatTokens a, b;
    char err[300];
    EXPECT(chat_build(tok, &o, &moved, 1, &a, err, sizeof(err)) == 0);
    EXPECT(chat_build(tok, &o, &plain, 1, &b, err, sizeof(err)) == 0);
    EXPECT(!strcmp(a.text, b.text));
    chat_tokens_free(&a);
    chat_tokens_free(&b);
    o.image = 0;
    EXPECT(chat_build(tok, &o, &moved, 1, &a, err, sizeof(err)) == 0);
    EXPECT(strstr(a.text, "<image>") == NULL && a.n_image == 0);
    chat_tokens_free(&a);
    tokenizer_free(tok);
}

// n_image_tokens copies of the image id in place of the one placeholder, never labelled.
TEST(chat_image_expand) {
    Tokenizer *tok = load_sp();
    ChatTurn t = {"Describe the image.", "A star."};
    ChatOptions o1 = opts(CHAT_LLAVA_HF, 1), o576 = opts(CHAT_LLAVA_HF, 1);
    o576.n_image_tokens = 576;
    ChatTokens a, b;
    char err[300];
    EXPECT(chat_build(tok, &o1, &t, 1, &a, err, sizeof(err)) == 0);
    EXPECT(chat_build(tok, &o576, &t, 1, &b, err, sizeof(err)) == 0);
    EXPECT_INT_EQ(b.n, a.n + 575);
    EXPECT_INT_EQ(b.n_image, 576);
    EXPECT_INT_EQ(b.image_start, a.image_start);
    for (int i = 0; i < b.n; i++) {
        int src = i < b.image_start ? i : i < b.image_start + 576 ? a.image_start : i - 575;
        EXPECT_INT_EQ(b.ids[i], a.ids[src]);
        EXPECT_INT_EQ(b.mask[i], a.mask[src]);
    }
    EXPECT_INT_EQ(b.n_labels, a.n_labels);
    chat_tokens_free(&a);
    chat_tokens_free(&b);
    tokenizer_free(tok);
}

// max_len: only answer/end tokens may be cut; cutting image or prompt tokens, or every answer token, is an error.
TEST(chat_truncation) {
    Tokenizer *tok = load_sp();
    ChatTurn t = {"What is shown in this image?", "A red circle on a white background, next to a blue square."};
    ChatOptions o = opts(CHAT_VICUNA_V1, 1);
    o.n_image_tokens = 576;
    ChatTokens full, c;
    char err[300];
    EXPECT(chat_build(tok, &o, &t, 1, &full, err, sizeof(err)) == 0);
    int first_label = -1;
    for (int i = 0; i < full.n && first_label < 0; i++) if (full.mask[i]) first_label = i;
    EXPECT(first_label > full.image_start + 576);
    // cut 3 answer tokens: fine
    o.max_len = full.n - 3;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0);
    EXPECT_INT_EQ(c.n, full.n - 3);
    EXPECT_INT_EQ(c.n_labels, full.n_labels - 3);
    for (int i = 0; i < c.n; i++) { EXPECT_INT_EQ(c.ids[i], full.ids[i]); EXPECT_INT_EQ(c.mask[i], full.mask[i]); }
    chat_tokens_free(&c);
    // keep exactly one answer token: fine; keep none: error
    o.max_len = first_label + 1;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0);
    EXPECT_INT_EQ(c.n_labels, 1);
    chat_tokens_free(&c);
    o.max_len = first_label;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "would cut the prompt") || strstr(err, "no answer token"), "message: %s", err);
    // into the prompt (after the image): error
    o.max_len = first_label - 2;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "would cut the prompt") != NULL, "message: %s", err);
    // into the image tokens: error that says so
    o.max_len = full.image_start + 100;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "would cut image tokens") != NULL, "message: %s", err);
    // no limit problem when max_len is large
    o.max_len = full.n;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0 && c.n == full.n);
    chat_tokens_free(&c);
    chat_tokens_free(&full);
    tokenizer_free(tok);
}

// max_text_len (S-VCO's cut at 128): the image counts as one token however many it expands to (an image row
// keeps max_text_len - 1 tokens besides the image, its image-free row max_text_len), and the end token falls off
// a long row.
TEST(chat_max_text_len_counts_the_image_as_one) {
    Tokenizer *tok = load_sp();
    ChatTurn t = {"What is shown in this image?", "A red circle on a white background, next to a blue square."};
    ChatOptions o = opts(CHAT_LLAVA_HF, 1), none = opts(CHAT_LLAVA_HF, 0);
    o.n_image_tokens = 576;
    ChatTokens full, free_full, c, d;
    char err[300];
    EXPECT(chat_build(tok, &o, &t, 1, &full, err, sizeof(err)) == 0);
    EXPECT(chat_build(tok, &none, &t, 1, &free_full, err, sizeof(err)) == 0);
    const int text = full.n - 575;  // tokens with the image as one
    EXPECT_INT_EQ(full.ids[full.n - 1], tok->eos_id);
    const int M = free_full.n - 2, cut = text - M;  // both rows cut, the image row by more
    EXPECT(cut > 2);
    o.max_text_len = none.max_text_len = M;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) == 0);
    EXPECT(chat_build(tok, &none, &t, 1, &d, err, sizeof(err)) == 0);
    EXPECT_INT_EQ(c.n, full.n - cut);          // text tokens cut, the EOS among them
    EXPECT_INT_EQ(c.n_labels, full.n_labels - cut);
    EXPECT_INT_EQ(c.n_image, 576);
    for (int i = 0; i < c.n; i++) { EXPECT_INT_EQ(c.ids[i], full.ids[i]); EXPECT_INT_EQ(c.mask[i], full.mask[i]); }
    EXPECT(c.ids[c.n - 1] != tok->eos_id);
    EXPECT_INT_EQ(d.n, M);                     // the image-free row: as many tokens as the image row has with its
    EXPECT_INT_EQ(d.n - (c.n - 576), 1);       // image as one, one more besides the image
    for (int i = 0; i < d.n; i++) EXPECT_INT_EQ(d.ids[i], free_full.ids[i]);
    chat_tokens_free(&c);
    chat_tokens_free(&d);
    // the image counted as one: a limit below the prompt with the image as one token is an error
    o.max_text_len = 5;
    EXPECT(chat_build(tok, &o, &t, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "max_text_len 5") != NULL, "message: %s", err);
    chat_tokens_free(&full);
    chat_tokens_free(&free_full);
    tokenizer_free(tok);
}

TEST(chat_errors) {
    Tokenizer *tok = load_sp();
    ChatTokens c;
    char err[300];
    ChatOptions o = opts(CHAT_VICUNA_V1, 1);
    ChatTurn two[2] = {{"Q1", "A1"}, {"Q2 <image>", "A2"}};
    EXPECT(chat_build(tok, &o, two, 2, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "<image>") != NULL, "message: %s", err);
    ChatTurn open_middle[2] = {{"Q1", NULL}, {"Q2", "A2"}};
    EXPECT(chat_build(tok, &o, open_middle, 2, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "turn 1 has no answer") != NULL, "message: %s", err);
    EXPECT(chat_build(tok, &o, two, 0, &c, err, sizeof(err)) != 0);
    EXPECT_INT_EQ(chat_template_from_name("vicuna_v1"), CHAT_VICUNA_V1);
    EXPECT_INT_EQ(chat_template_from_name("llava_hf"), CHAT_LLAVA_HF);
    EXPECT_INT_EQ(chat_template_from_name("chatml"), -1);
    // A generation prompt: no labels, ends with "ASSISTANT:" (▁A SS IST ANT :)
    ChatTurn gen = {"What is shown in this image?", NULL};
    o.tmpl = CHAT_LLAVA_HF;
    EXPECT(chat_build(tok, &o, &gen, 1, &c, err, sizeof(err)) == 0);
    EXPECT_INT_EQ(c.n_labels, 0);
    EXPECT(!strcmp(c.text, "USER: <image>\nWhat is shown in this image? ASSISTANT:"));
    EXPECT_INT_EQ(c.ids[c.n - 1], 29901);
    chat_tokens_free(&c);
    // llava_hf_image_last: the image after the question, everything else as llava_hf (the answer's labels, EOS)
    EXPECT_INT_EQ(chat_template_from_name("llava_hf_image_last"), CHAT_LLAVA_HF_IMAGE_LAST);
    EXPECT(!strcmp(chat_template_name(CHAT_LLAVA_HF_IMAGE_LAST), "llava_hf_image_last"));
    o.tmpl = CHAT_LLAVA_HF_IMAGE_LAST;
    EXPECT(chat_build(tok, &o, &gen, 1, &c, err, sizeof(err)) == 0);
    EXPECTF(!strcmp(c.text, "USER: What is shown in this image?\n<image> ASSISTANT:"), "text: %s", c.text);
    EXPECT_INT_EQ(c.n_labels, 0);
    EXPECT(c.image_start > 0 && c.ids[c.image_start] == tok->image_id && c.ids[c.image_start - 1] != tok->image_id);
    chat_tokens_free(&c);
    ChatTurn ans = {"<image>\nIs it red?", "yes"}, ans_hf = ans;
    ChatTokens last, first;
    EXPECT(chat_build(tok, &o, &ans, 1, &last, err, sizeof(err)) == 0);
    o.tmpl = CHAT_LLAVA_HF;
    EXPECT(chat_build(tok, &o, &ans_hf, 1, &first, err, sizeof(err)) == 0);
    EXPECTF(!strcmp(last.text, "USER: Is it red?\n<image> ASSISTANT: yes "), "text: %s", last.text);
    // the same labelled tail: "▁yes", the space, EOS
    EXPECT_INT_EQ(last.n_labels, first.n_labels);
    int same = last.n >= 3 && first.n >= 3;
    for (int k = 1; k <= 3 && same; k++) same = last.ids[last.n - k] == first.ids[first.n - k] && last.mask[last.n - k] && first.mask[first.n - k];
    EXPECT(same);
    EXPECT_INT_EQ(last.ids[last.n - 1], tok->eos_id);
    chat_tokens_free(&last);
    chat_tokens_free(&first);
    tokenizer_free(tok);
}

// Several images: their placeholders stay where the user messages have them (one per image, any user turn), or go
// in front of the first message when there are none; each expands to its own run of feature tokens, none of them
// labels; any other count is an error naming both counts.
TEST(chat_multi_image) {
    Tokenizer *tok = load_sp();
    char err[300];
    ChatTurn in_place[2] = {{"Is <image> the same as <image>?", "No."}, {"And <image>?", "Yes."}};
    ChatOptions o = opts(CHAT_VICUNA_V1, 3);
    o.system = "";
    char *t = chat_render(&o, in_place, 2, err, sizeof(err));
    EXPECTF(t && !strcmp(t, "USER: Is <image> the same as <image>? ASSISTANT: No.</s>USER: And <image>? ASSISTANT: Yes.</s>"),
            "rendered: %s", t ? t : err);
    free(t);
    ChatTurn none = {"Which differs?", "The left one."};
    o.image = 2;
    t = chat_render(&o, &none, 1, err, sizeof(err));
    EXPECTF(t && !strcmp(t, "USER: <image>\n<image>\nWhich differs? ASSISTANT: The left one.</s>"), "rendered: %s", t ? t : err);
    free(t);
    ChatOptions oi = opts(CHAT_LLAVA_INTERLEAVE, 2);  // the Interleave template renders a message's images first
    t = chat_render(&oi, &none, 1, err, sizeof(err));
    EXPECTF(t && !strncmp(t, "<|im_start|>user <image><image>\nWhich differs?<|im_end|>", 55), "rendered: %s", t ? t : err);
    free(t);
    // expanded: 3 runs of 4 image ids at the placeholders, in order, never labels
    o.image = 3;
    o.n_image_tokens = 4;
    ChatTokens c;
    EXPECTF(chat_build(tok, &o, in_place, 2, &c, err, sizeof(err)) == 0, "%s", err);
    int runs = 0, n_img = 0;
    for (int i = 0; i < c.n; i++) {
        if (c.ids[i] != tok->image_id) continue;
        n_img++;
        EXPECT_INT_EQ(c.mask[i], 0);
        if (i == 0 || c.ids[i - 1] != tok->image_id) runs++;
    }
    EXPECT_INT_EQ(n_img, 12);
    EXPECT_INT_EQ(c.n_image, 12);
    EXPECT_INT_EQ(runs, 3);
    EXPECT(c.n_labels > 0);
    chat_tokens_free(&c);
    // the image-free variant drops the front placement only; placeholders written for several images are an error there
    ChatTurn one = {"Is <image> the same as <image>?", "No."};
    o.image = 3;
    EXPECT(chat_build(tok, &o, &one, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "2 <image> placeholders for 3 images") != NULL, "message: %s", err);
    o.image = 1;
    EXPECT(chat_build(tok, &o, &one, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "2 <image> placeholders for 1 image ") != NULL, "message: %s", err);
    ChatTurn in_answer = {"Compare <image> and <image>.", "Like <image>."};
    o.image = 2;
    EXPECT(chat_build(tok, &o, &in_answer, 1, &c, err, sizeof(err)) != 0);
    EXPECTF(strstr(err, "has 3 <image> placeholders, expected 2") != NULL, "message: %s", err);
    tokenizer_free(tok);
}
