// The dataset record readers (data/datasets.c): the first byte picks the format (LLaVA conversations,
// preference pairs, MVC pairs, POPE questions) and skip_bad; the rest is the file. Bad records are
// errors naming the file and record (or skipped and counted), never a crash.
#include "fuzz.h"

#include "../../data/datasets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const DataKind kinds[4] = {DATA_LLAVA, DATA_PREF, DATA_MVC, DATA_POPE};
    const DataKind kind = kinds[data[0] % 4];
    const char *path = fuzz_write_file(data + 1, size - 1, kind == DATA_PREF ? ".jsonl" : ".json");
    DatasetOptions opt = {"/images", (data[0] >> 2) & 1};
    FUZZ_BEGIN
        Dataset ds;
        dataset_read(&ds, kind, path, &opt);
        if (ds.n < 0 || ds.n_bad < 0) abort();
        dataset_free(&ds);
    FUZZ_END
    return 0;
}
