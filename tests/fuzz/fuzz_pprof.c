/* tests/fuzz/fuzz_pprof.c - wd_pprof_merge (engine/deploy/pprof.c) on arbitrary bytes: every part
 * is a replica's GetProfile reply, gzipped or not, and nothing in it is trusted (ids, string
 * indexes, gzip sizes). The first two bytes (little-endian) say where the rest splits into two
 * parts. A successful merge must itself merge again (a valid profile); a failure sets one message.
 * Corpus: corpus/pprof/. */
#include "engine/base/error.h"
#include "engine/deploy/pprof.h"
#include "engine/base/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int rc, struct wd_error **err)
{
    if (rc >= 0 || *err == NULL || (*err)->errnum != -rc || (*err)->msg == NULL ||
        strchr((*err)->msg, '\n') != NULL)
        abort();
    if (rc != -EPROTO && rc != -EMSGSIZE && rc != -ENODATA)
        abort();
    wd_err_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1);
    const struct wd_pprof_part parts[2] = {
        {data + 2, split, "a"},
        {data + 2 + split, size - 2 - split, "b"},
    };
    struct wd_buf out = {.max = 64u << 20};
    struct wd_error *err = NULL;
    size_t skipped = 0;
    int rc = wd_pprof_merge(parts, 2, &skipped, &out, &err);
    if (rc < 0) {
        check_err(rc, &err);
        if (out.len != 0)
            abort(); /* nothing written on failure */
        return 0;
    }
    if (err != NULL || skipped > 1 || out.len < 2 || out.data[0] != 0x1f || out.data[1] != 0x8b)
        abort();
    const struct wd_pprof_part again = {out.data, out.len, "merged"};
    struct wd_buf out2 = {0};
    rc = wd_pprof_merge(&again, 1, &skipped, &out2, &err);
    if (rc == -EMSGSIZE) /* near a bound, the labels added can push it over */
        wd_err_free(&err);
    else if (rc < 0 || skipped != 0)
        abort();
    wd_buf_free(&out2);
    wd_buf_free(&out);
    return 0;
}
