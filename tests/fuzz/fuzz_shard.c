// A packed shard (data/shard.c, `vlm data pack`): shard_open validates the header and every table
// against the file size; everything it accepts must be readable. The target recomputes both CRC32s
// first, so mutations reach the validation behind them (a real corrupted file fails the CRC).
#include <zlib.h>

#include "fuzz.h"

#include "../../data/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = xmalloc(size ? size : 1);
    memcpy(buf, data, size);
    if (size >= sizeof(ShardHeader)) {
        ShardHeader h;
        memcpy(&h, buf, sizeof(h));
        size_t from = h.header_bytes >= sizeof(h) && h.header_bytes <= size ? h.header_bytes : sizeof(h);
        h.payload_crc = (uint32_t)crc32(crc32(0, NULL, 0), buf + from, (uInt)(size - from));
        h.header_crc = 0;
        h.header_crc = (uint32_t)crc32(crc32(0, NULL, 0), (const Bytef *)&h, sizeof(h));
        memcpy(buf, &h, sizeof(h));
    }
    const char *path = fuzz_write_file(buf, size, ".shard");
    free(buf);
    FUZZ_BEGIN
        Shard s;
        char err[512];
        if (shard_open(&s, path, 1, err, sizeof(err)) == 0) {
            volatile uint32_t sum = 0;
            for (uint64_t r = 0; r < s.h->n_records; r++) {
                const ShardRecord *rec = &s.records[r];
                for (uint32_t f = 0; f < rec->n_fields; f++) {
                    const char *t = shard_record_field(&s, r, (int)f);
                    if (!t) abort();
                    sum += (uint32_t)strlen(t);
                }
                const uint32_t *im = shard_record_images(&s, r);
                for (uint32_t k = 0; k < rec->n_images; k++) {
                    if (im[k] >= s.h->n_images) abort();
                    sum += shard_image(&s, im[k])[0];
                }
                for (uint32_t k = 0; k < rec->n_ids; k++) sum += (uint32_t)s.ids[rec->ids_first + k] + s.mask[rec->ids_first + k];
            }
            (void)sum;
            shard_close(&s);
        }
    FUZZ_END
    return 0;
}
