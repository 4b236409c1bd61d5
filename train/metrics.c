#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

void metrics_open(MetricsLog *m, const char *path, int resume_step) {
    m->path = xstrdup(path);
    char *keep = NULL;
    size_t keep_len = 0;
    if (resume_step > 0) {
        char *old = try_read_file(path, NULL);
        if (old) {
            keep = xmalloc(strlen(old) + 1);
            for (char *line = strtok(old, "\n"); line; line = strtok(NULL, "\n")) {
                cJSON *j = cJSON_Parse(line);
                const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
                if (cJSON_IsNumber(s) && s->valuedouble <= resume_step) {
                    size_t n = strlen(line);
                    memcpy(keep + keep_len, line, n);
                    keep[keep_len + n] = '\n';
                    keep_len += n + 1;
                }
                cJSON_Delete(j);
            }
            free(old);
        }
    }
    write_file_atomic(path, keep ? keep : "", keep_len);
    free(keep);
    m->f = fopen(path, "ab");
    if (!m->f) fatal("%s: cannot open for writing: %s", path, strerror(errno));
}

// A metrics line that cannot be written fails the run: a full disk must not leave a silently empty log
// behind a run that says it succeeded.
void metrics_write(MetricsLog *m, const cJSON *record) {
    char *s = cJSON_PrintUnformatted(record);
    if (fprintf(m->f, "%s\n", s) < 0 || fflush(m->f) != 0) fatal("%s: write failed: %s", m->path, strerror(errno));
    free(s);
}

void metrics_close(MetricsLog *m) {
    if (m->f && fclose(m->f) != 0) fatal("%s: close failed: %s", m->path, strerror(errno));
    free(m->path);
    memset(m, 0, sizeof(*m));
}
