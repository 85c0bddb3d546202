/* tests/fuzz/fuzz_metrics.c - the metric store of engine/deploy/metrics.c on arbitrary
 * GetMetricsReply bytes. Input: a filter byte, then records [op u8][len u16 little-endian][len
 * bytes]; op bit 0 picks one of two replicas, bit 1 marks it gone instead of applying the bytes,
 * bit 2 switches its group. Both outputs are rendered after every record and checked for shape; a
 * failed update must leave the store unchanged. Corpus: corpus/metrics/. */
#include "engine/deploy/metrics.h"
#include "engine/base/util.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void render(struct wd_metrics *m, const char *filter, char **prom, char **json)
{
    struct wd_buf b = {0};
    wd_metrics_prometheus(m, filter, &b);
    *prom = wd_buf_steal_str(&b);
    wd_metrics_json(m, filter, &b);
    *json = wd_buf_steal_str(&b);
}

static void check(const char *prom, const char *json)
{
    /* every line is a comment or starts a sanitized name; every line ends in "\n" */
    for (const char *p = prom; *p;) {
        char c = *p;
        if (!(c == '#' || c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            abort();
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            abort();
        p = nl + 1;
    }
    cJSON *doc = cJSON_Parse(json);
    if (doc == NULL || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "metrics")))
        abort();
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const replicas[] = {"cart/0/1a2b3c4d", "cart/1/5e6f7a8b"};
    static const char *const groups[] = {"cart", "shop"};
    static const char *const filters[] = {NULL, "a", "_", "lat"};
    if (size == 0)
        return 0;
    const char *filter = filters[data[0] % 4];
    struct wd_metrics *m = wd_metrics_new();
    size_t off = 1;
    int steps = 0;
    while (off + 3 <= size && steps++ < 16) {
        uint8_t op = data[off];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off)
            len = size - off;
        const char *rep = replicas[op & 1];
        if (op & 2) {
            wd_metrics_replica_gone(m, rep);
        } else {
            struct wd_metrics_stats before, after;
            wd_metrics_stats(m, &before);
            char *p0 = NULL, *j0 = NULL;
            if (op & 8) /* full before/after comparison, on some records only: it is slow */
                render(m, NULL, &p0, &j0);
            int ret = wd_metrics_update(m, rep, groups[(op >> 2) & 1], data + off, len);
            wd_metrics_stats(m, &after);
            if (ret < 0 && memcmp(&before, &after, sizeof before) != 0)
                abort();
            if (after.bytes > WD_METRICS_MAX_BYTES || after.defs > 2 * WD_METRICS_MAX_DEFS)
                abort();
            if (p0 != NULL && ret < 0) {
                char *p1, *j1;
                render(m, NULL, &p1, &j1);
                if (strcmp(p0, p1) != 0 || strcmp(j0, j1) != 0)
                    abort();
                free(p1);
                free(j1);
            }
            free(p0);
            free(j0);
        }
        off += len;
        char *prom, *json;
        render(m, filter, &prom, &json);
        check(prom, json);
        free(prom);
        free(json);
    }
    wd_metrics_replica_gone(m, replicas[0]);
    char *prom, *json;
    render(m, filter, &prom, &json);
    check(prom, json);
    free(prom);
    free(json);
    wd_metrics_free(m);
    return 0;
}
