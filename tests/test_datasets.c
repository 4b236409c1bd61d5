// Dataset readers: hand-made files of each format, the real POPE question files, and bad input: every
// error names the file, the line or record and the problem; --skip-bad counts instead of dying.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../data/datasets.h"
#include "../util/common.h"
#include "test.h"

// Writes text to a fresh file in the test folder; returns its path (malloc'd).
// Reads a dataset in a child process, since readers die (fatal) on bad input. Returns the exit status;
// *err gets the child's stderr (malloc'd).
static int read_in_child(DataKind kind, const char *path, const DatasetOptions *opt, char **err) {
    char *err_path = path_join(test_tmpdir(), "child.err");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(err_path, "w", stderr)) _exit(99);
        Dataset ds;
        dataset_read(&ds, kind, path, opt);
        dataset_free(&ds);
        fflush(stderr);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    *err = try_read_file(err_path, NULL);
    if (!*err) *err = xstrdup("");
    free(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Sends stderr to /dev/null (for warnings a test has already checked); returns what restores it.
static int quiet_stderr(void) {
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    close(null);
    return saved;
}

static void restore_stderr(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

// The file must be refused with a message containing every one of the given pieces.
static void expect_error(DataKind kind, const char *path, const char *piece1, const char *piece2) {
    char *err;
    int rc = read_in_child(kind, path, NULL, &err);
    EXPECTF(rc != 0, "%s: expected an error, exit 0", path);
    EXPECTF(strstr(err, path) != NULL, "message does not name the file: %s", err);
    EXPECTF(strstr(err, piece1) != NULL, "message lacks \"%s\": %s", piece1, err);
    EXPECTF(!piece2 || strstr(err, piece2) != NULL, "message lacks \"%s\": %s", piece2, err);
    free(err);
}

TEST(datasets_kind_names) {
    EXPECT_INT_EQ(data_kind_parse("llava"), DATA_LLAVA);
    EXPECT_INT_EQ(data_kind_parse("pref"), DATA_PREF);
    EXPECT_INT_EQ(data_kind_parse("mvc"), DATA_MVC);
    EXPECT_INT_EQ(data_kind_parse("pope"), DATA_POPE);
    EXPECT_INT_EQ(data_kind_parse("sft"), DATA_NONE);
    EXPECT(!strcmp(data_kind_name(DATA_MVC), "mvc"));
}

TEST(datasets_llava_reads_conversations) {
    char *path = test_write_tmp("ds_llava.json",
        "[\n"
        " {\"id\": \"000000033471\", \"image\": \"coco/a.jpg\", \"conversations\": [\n"
        "   {\"from\": \"human\", \"value\": \"<image>\\nWhat color is the bus?\"},\n"
        "   {\"from\": \"gpt\", \"value\": \"Red.\"},\n"
        "   {\"from\": \"human\", \"value\": \"How many?\"},\n"
        "   {\"from\": \"gpt\", \"value\": \"Two.\"}]},\n"
        " {\"id\": 17, \"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello \\u00e9\"}]},\n"
        " {\"id\": \"x\", \"image\": \"/abs/b.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"Describe.\"},\n"
        "   {\"from\": \"gpt\", \"value\": \"A cat.\"}]}\n"
        "]\n");
    Dataset ds;
    dataset_read_llava(&ds, path, NULL);
    EXPECT_INT_EQ(ds.kind, DATA_LLAVA);
    EXPECT_INT_EQ(ds.n, 3);
    EXPECT_INT_EQ(ds.n_bad, 0);
    char *want = path_join(test_tmpdir(), "coco/a.jpg");
    EXPECTF(!strcmp(ds.llava[0].images[0], want), "image %s, expected %s", ds.llava[0].images[0], want);
    EXPECT(!strcmp(ds.llava[0].id, "000000033471"));
    EXPECT_INT_EQ(ds.llava[0].n_turns, 4);
    EXPECT(!strcmp(ds.llava[0].turns[0], "<image>\nWhat color is the bus?"));
    EXPECT(!strcmp(ds.llava[0].turns[3], "Two."));
    EXPECT_INT_EQ(ds.llava[1].n_images, 0);
    EXPECT(!strcmp(ds.llava[1].id, "17"));
    EXPECT(!strcmp(ds.llava[1].turns[1], "Hello \xc3\xa9"));  // UTF-8 kept
    EXPECT(!strcmp(ds.llava[2].images[0], "/abs/b.png"));          // absolute paths are kept
    EXPECT_INT_EQ(ds.llava[2].src.index, 2);
    char where[512];
    dataset_where(&ds, 2, where, sizeof(where));
    EXPECTF(strstr(where, "record 2") != NULL, "%s", where);
    dataset_free(&ds);
    // an image root replaces the file's folder
    DatasetOptions opt = {"/data/images", 0};
    dataset_read_llava(&ds, path, &opt);
    EXPECT(!strcmp(ds.llava[0].images[0], "/data/images/coco/a.jpg"));
    dataset_free(&ds);
    free(want);
    free(path);
}

TEST(datasets_llava_bad_records_name_the_record) {
    static const struct { const char *json, *piece; } cases[] = {
        {"[{\"conversations\": [{\"from\": \"gpt\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"b\"}]}]", "alternate"},
        {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"b\"}]}]", "alternate"},
        {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"bot\", \"value\": \"b\"}]}]", "\"bot\""},
        {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"  \"}]}]", "turn 1 (gpt) is empty"},
        {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"},"
         " {\"from\": \"human\", \"value\": \"c\"}]}]", "end with a gpt answer"},
        {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}]}]", "1 turn"},
        {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"<image> a\"}, {\"from\": \"gpt\", \"value\": \"b\"}]}]",
         "no \"image\""},
        {"[{\"image\": \"a.jpg\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image> a <image>\"},"
         " {\"from\": \"gpt\", \"value\": \"b\"}]}]", "2 times"},
        {"[{\"image\": \"a.jpg\", \"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"},"
         " {\"from\": \"human\", \"value\": \"<image>c\"}, {\"from\": \"gpt\", \"value\": \"d\"}]}]", "first human turn"},
        {"[{\"image\": [\"a.jpg\", \"b.jpg\"], \"conversations\": [{\"from\": \"human\", \"value\": \"<image> a\"},"
         " {\"from\": \"gpt\", \"value\": \"b\"}]}]", "1 times for 2 images"},
        {"[{\"image\": [\"a.jpg\", \"b.jpg\"], \"conversations\": [{\"from\": \"human\", \"value\": \"<image> a <image>\"},"
         " {\"from\": \"gpt\", \"value\": \"b <image>\"}]}]", "turn 1 (gpt) contains <image>"},
        {"[{\"image\": 3, \"conversations\": []}]", "\"image\" must be a string"},
        {"[{\"id\": \"q1\"}]", "missing \"conversations\""},
        {"[7]", "expected a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = test_write_tmp("ds_llava_bad.json", cases[i].json);
        expect_error(DATA_LLAVA, path, "record 0", cases[i].piece);
        free(path);
    }
    // the id is named when there is one
    char *path = test_write_tmp("ds_llava_bad.json", "[{\"id\": \"ok\", \"conversations\": [{\"from\": \"human\", \"value\": \"a\"},"
                                                " {\"from\": \"gpt\", \"value\": \"b\"}]}, {\"id\": \"abc\", \"conversations\": 5}]");
    expect_error(DATA_LLAVA, path, "record 1 (id \"abc\")", "list of turns");
    free(path);
    // malformed JSON: the line of the error; not an array
    path = test_write_tmp("ds_llava_bad.json", "[\n {\"id\": 1},\n {\"id\": 2,,}\n]\n");
    expect_error(DATA_LLAVA, path, ":3: malformed JSON", NULL);
    free(path);
    path = test_write_tmp("ds_llava_bad.json", "{\"id\": 1}");
    expect_error(DATA_LLAVA, path, "expected a JSON array", NULL);
    free(path);
    path = test_write_tmp("ds_llava_bad.json", "[]");
    expect_error(DATA_LLAVA, path, "no records", NULL);
    free(path);
}

TEST(datasets_llava_skip_bad_counts) {
    char *path = test_write_tmp("ds_llava_skip.json",
        "[{\"conversations\": [{\"from\": \"human\", \"value\": \"q0\"}, {\"from\": \"gpt\", \"value\": \"a0\"}]},\n"
        " {\"conversations\": [{\"from\": \"human\", \"value\": \"q1\"}]},\n"
        " {\"conversations\": [{\"from\": \"human\", \"value\": \"q2\"}, {\"from\": \"gpt\", \"value\": \"a2\"}]},\n"
        " \"junk\",\n"
        " {\"conversations\": [{\"from\": \"human\", \"value\": \"q4\"}, {\"from\": \"gpt\", \"value\": \"a4\"}]}]\n");
    char *err;
    DatasetOptions opt = {NULL, 1};
    EXPECT_INT_EQ(read_in_child(DATA_LLAVA, path, &opt, &err), 0);
    EXPECTF(strstr(err, "record 1") && strstr(err, "record 3") && strstr(err, "2 bad records skipped, 3 kept"), "stderr: %s", err);
    free(err);
    Dataset ds;
    int saved = quiet_stderr();  // the warnings are checked above
    dataset_read_llava(&ds, path, &opt);
    restore_stderr(saved);
    EXPECT_INT_EQ(ds.n, 3);
    EXPECT_INT_EQ(ds.n_bad, 2);
    EXPECT_INT_EQ(ds.llava[1].src.index, 2);  // indices are those of the file
    EXPECT_INT_EQ(ds.llava[2].src.index, 4);
    EXPECT(!strcmp(ds.llava[2].turns[0], "q4"));
    dataset_free(&ds);
    free(path);
}

TEST(datasets_pref_reads_and_names_lines) {
    char *path = test_write_tmp("ds_pref.jsonl",
        "{\"image\": \"img/1.png\", \"prompt\": \"<image>\\nWhat is it?\", \"chosen\": \"A dog.\", \"rejected\": \"A cat.\"}\n"
        "\n"
        "{\"prompt\": \"Say hi.\", \"chosen\": \"Hi.\", \"rejected\": \"No.\", \"extra\": 1}\n"
        "{\"image\": [\"img/2.png\", \"img/1.png\"], \"prompt\": \"<image> or <image>?\", \"chosen\": \"The first.\", \"rejected\": \"No.\"}\n");
    Dataset ds;
    dataset_read_pref(&ds, path, NULL);
    EXPECT_INT_EQ(ds.n, 3);
    EXPECTF(ds.pref[2].n_images == 2 && strstr(ds.pref[2].images[0], "img/2.png") && strstr(ds.pref[2].images[1], "img/1.png"),
            "an image list in order (%d images)", ds.pref[2].n_images);
    char *want = path_join(test_tmpdir(), "img/1.png");
    EXPECT(!strcmp(ds.pref[0].images[0], want));
    EXPECT(!strcmp(ds.pref[0].chosen, "A dog."));
    EXPECT_INT_EQ(ds.pref[1].n_images, 0);
    EXPECT_INT_EQ(ds.pref[1].src.line, 3);  // blank lines count as lines, not records
    EXPECT_INT_EQ(ds.pref[1].src.index, 1);
    char where[512];
    dataset_where(&ds, 1, where, sizeof(where));
    EXPECTF(strstr(where, "ds_pref.jsonl:3") != NULL, "%s", where);
    dataset_free(&ds);
    free(want);
    free(path);

    static const struct { const char *line, *piece; } cases[] = {
        {"{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": }", "malformed JSON"},
        {"{\"prompt\": \"q\", \"chosen\": \"a\"}", "missing \"rejected\""},
        {"{\"prompt\": \"\", \"chosen\": \"a\", \"rejected\": \"b\"}", "\"prompt\" is empty"},
        {"{\"prompt\": \"q\", \"chosen\": 1, \"rejected\": \"b\"}", "\"chosen\" must be a string"},
        {"{\"prompt\": \"q\", \"chosen\": \"same\", \"rejected\": \"same\"}", "identical"},
        {"{\"prompt\": \"<image> q\", \"chosen\": \"a\", \"rejected\": \"b\"}", "no \"image\""},
        {"{\"image\": [\"a.png\", \"b.png\"], \"prompt\": \"<image> q\", \"chosen\": \"a\", \"rejected\": \"b\"}",
         "1 times in \"prompt\" for 2 images"},
        {"[1, 2]", "expected a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n%s\n", cases[i].line);
        path = test_write_tmp("ds_pref_bad.jsonl", text);
        expect_error(DATA_PREF, path, "ds_pref_bad.jsonl:2:", cases[i].piece);
        free(path);
    }
}

TEST(datasets_pref_skip_bad_counts) {
    char *path = test_write_tmp("ds_pref_skip.jsonl",
        "{\"prompt\": \"q0\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
        "{\"prompt\": \"q1\", \"chosen\": \"a\", \"rejected\": \n"       // malformed JSON
        "{\"prompt\": \"q2\", \"chosen\": \"a\", \"rejected\": \"a\"}\n"  // no preference
        "{\"prompt\": \"q3\", \"chosen\": \"a\", \"rejected\": \"b\"}\n");
    char *err;
    DatasetOptions opt = {NULL, 1};
    EXPECT_INT_EQ(read_in_child(DATA_PREF, path, &opt, &err), 0);
    EXPECTF(strstr(err, "ds_pref_skip.jsonl:2") && strstr(err, "ds_pref_skip.jsonl:3") && strstr(err, "2 bad records skipped, 2 kept"),
            "stderr: %s", err);
    free(err);
    EXPECT(read_in_child(DATA_PREF, path, NULL, &err) != 0);  // without skip_bad the first bad line is fatal
    EXPECTF(strstr(err, "ds_pref_skip.jsonl:2: malformed JSON") != NULL, "stderr: %s", err);
    free(err);
    int saved = quiet_stderr();
    Dataset ds;
    dataset_read_pref(&ds, path, &opt);
    restore_stderr(saved);
    EXPECT_INT_EQ(ds.n, 2);
    EXPECT_INT_EQ(ds.n_bad, 2);
    EXPECT(!strcmp(ds.pref[1].prompt, "q3"));
    EXPECT_INT_EQ(ds.pref[1].src.line, 4);
    EXPECT_INT_EQ(ds.pref[1].src.index, 3);
    dataset_free(&ds);
    // nothing left is an error even when skipping
    char *all_bad = test_write_tmp("ds_pref_allbad.jsonl", "{\"prompt\": 1}\n");
    EXPECT(read_in_child(DATA_PREF, all_bad, &opt, &err) != 0);
    EXPECTF(strstr(err, "no valid records") != NULL, "stderr: %s", err);
    free(err);
    free(all_bad);
    free(path);
}

TEST(datasets_mvc_reads_pairs) {
    char *path = test_write_tmp("ds_mvc.json",
        "[{\"system_prompt\": \"You are a helpful assistant.\", \"instruction_prompt\": \"Is the dog left of the cat?\",\n"
        "  \"chosen_images\": [\"flickr/1.jpg\"], \"rejected_images\": [\"flickr/1_flip.jpg\"],\n"
        "  \"chosen_response\": \"Yes, the dog is on the left.\", \"rejected_response\": \"No, the dog is on the right.\"},\n"
        " {\"instruction_prompt\": \"Compare.\", \"chosen_images\": [\"a.jpg\", \"b.jpg\"], \"rejected_images\": [\"c.jpg\"],\n"
        "  \"chosen_response\": \"Same.\", \"rejected_response\": \"Different.\"}]");
    DatasetOptions opt = {"/img", 0};
    Dataset ds;
    dataset_read_mvc(&ds, path, &opt);
    EXPECT_INT_EQ(ds.n, 2);
    EXPECT(!strcmp(ds.mvc[0].system_prompt, "You are a helpful assistant."));
    EXPECT_INT_EQ(ds.mvc[0].n_chosen_images, 1);
    EXPECT(!strcmp(ds.mvc[0].chosen_images[0], "/img/flickr/1.jpg"));
    EXPECT(!strcmp(ds.mvc[0].rejected_images[0], "/img/flickr/1_flip.jpg"));
    EXPECT(!strcmp(ds.mvc[1].system_prompt, ""));  // absent system prompt: empty
    EXPECT_INT_EQ(ds.mvc[1].n_chosen_images, 2);
    EXPECT_INT_EQ(ds.mvc[1].n_rejected_images, 1);
    EXPECT(!strcmp(ds.mvc[1].rejected_response, "Different."));
    dataset_free(&ds);
    free(path);

    static const struct { const char *rec, *piece; } cases[] = {
        {"{\"instruction_prompt\": \"q\", \"chosen_images\": [], \"rejected_images\": [\"b\"], \"chosen_response\": \"x\", "
         "\"rejected_response\": \"y\"}", "\"chosen_images\" is empty"},
        {"{\"instruction_prompt\": \"q\", \"chosen_images\": [\"a\"], \"chosen_response\": \"x\", \"rejected_response\": \"y\"}",
         "missing \"rejected_images\""},
        {"{\"instruction_prompt\": \"q\", \"chosen_images\": \"a\", \"rejected_images\": [\"b\"], \"chosen_response\": \"x\", "
         "\"rejected_response\": \"y\"}", "must be a list"},
        {"{\"instruction_prompt\": \"q\", \"chosen_images\": [\"a\"], \"rejected_images\": [\"\"], \"chosen_response\": \"x\", "
         "\"rejected_response\": \"y\"}", "\"rejected_images\"[0]"},
        {"{\"instruction_prompt\": \"q\", \"chosen_images\": [\"a\"], \"rejected_images\": [\"b\"], \"chosen_response\": \"x\", "
         "\"rejected_response\": \"\"}", "\"rejected_response\" is empty"},
        {"{\"chosen_images\": [\"a\"], \"rejected_images\": [\"b\"], \"chosen_response\": \"x\", \"rejected_response\": \"y\"}",
         "missing \"instruction_prompt\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "[%s]", cases[i].rec);
        path = test_write_tmp("ds_mvc_bad.json", text);
        expect_error(DATA_MVC, path, "record 0", cases[i].piece);
        free(path);
    }
}

TEST(datasets_pope_real_files) {
    static const char *splits[] = {"random", "popular", "adversarial"};
    int labels[3][3000];
    for (int s = 0; s < 3; s++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "benchmarks/pope/coco_pope_%s.json", splits[s]);
        char *path = path_join(test_shared_data(), rel);
        if (!file_exists(path)) { test_fail(__FILE__, __LINE__, "%s is missing", path); free(path); return; }
        DatasetOptions opt = {"/coco/val2014", 0};
        Dataset ds;
        dataset_read_pope(&ds, path, &opt);
        EXPECT_INT_EQ(ds.n, 3000);
        EXPECT_INT_EQ(ds.n_bad, 0);
        int yes = 0, ordered = 1;
        for (int i = 0; i < ds.n && i < 3000; i++) {
            yes += ds.pope[i].label;
            labels[s][i] = ds.pope[i].label;
            ordered &= ds.pope[i].question_id == i + 1 && ds.pope[i].src.line == i + 1;
        }
        EXPECT_INT_EQ(yes, 1500);
        EXPECT(ordered);
        EXPECT(!strcmp(ds.pope[0].image, "/coco/val2014/COCO_val2014_000000310196.jpg"));
        EXPECT(!strcmp(ds.pope[0].text, "Is there a snowboard in the image?"));
        EXPECT_INT_EQ(ds.pope[0].label, 1);
        EXPECT_INT_EQ(ds.pope[1].label, 0);
        // 500 images, 6 questions each, in runs
        int images = 1;
        for (int i = 1; i < ds.n; i++) images += strcmp(ds.pope[i].image, ds.pope[i - 1].image) != 0;
        EXPECT_INT_EQ(images, 500);
        dataset_free(&ds);
        free(path);
    }
    // the label sequence is the same in all three splits (research/evals-peers.md A1)
    EXPECT(!memcmp(labels[0], labels[1], sizeof(labels[0])) && !memcmp(labels[0], labels[2], sizeof(labels[0])));
}

TEST(datasets_pope_bad_lines) {
    static const struct { const char *line, *piece; } cases[] = {
        {"{\"question_id\": 2, \"image\": \"b.jpg\", \"text\": \"Is there a cat?\", \"label\": \"maybe\"}", "\"yes\" or \"no\""},
        {"{\"question_id\": 2.5, \"image\": \"b.jpg\", \"text\": \"Is there a cat?\", \"label\": \"no\"}", "integer"},
        {"{\"question_id\": 2, \"text\": \"Is there a cat?\", \"label\": \"no\"}", "missing \"image\""},
        {"{\"question_id\": 2, \"image\": \"b.jpg\", \"label\": \"no\"}", "missing \"text\""},
        {"{\"question_id\": 2, \"image\": \"b.jpg\", \"text\": \"Is there a cat?\"", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "{\"question_id\": 1, \"image\": \"a.jpg\", \"text\": \"Is there a dog?\", \"label\": \"yes\"}\n%s\n",
                 cases[i].line);
        char *path = test_write_tmp("ds_pope_bad.json", text);
        expect_error(DATA_POPE, path, "ds_pope_bad.json:2:", cases[i].piece);
        free(path);
    }
}
