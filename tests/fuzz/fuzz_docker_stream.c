/* Fuzz target: the logs/attach stream demultiplexer and the events/progress line splitter.
 * Byte 0: bit 0 = TTY stream, bit 1 = line splitter instead; byte 1: chunk size (1..256). */
#include "engine/docker/docker_internal.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *arg, int stream, const uint8_t *p, size_t n)
{
    size_t *total = arg;
    if (stream != 1 && stream != 2)
        __builtin_trap();
    *total += n;
    (void)p;
    return 0;
}

static int line(void *arg, const char *l, size_t n)
{
    size_t *total = arg;
    if (n == 0 || l[n - 1] == '\n')
        __builtin_trap();
    *total += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    size_t chunk = (size_t)data[1] + 1, total = 0;
    data += 2;
    size -= 2;
    struct wd_error *err = NULL;
    if (mode & 2) {
        struct wd_lines l = {0};
        int rc = 0;
        for (size_t off = 0; rc == 0 && off < size; off += chunk)
            rc = wd_lines_feed(&l, data + off, size - off < chunk ? size - off : chunk, line,
                               &total, &err);
        if (rc == 0)
            rc = wd_lines_end(&l, line, &total, &err);
        wd_lines_free(&l);
    } else {
        struct wd_demux m = {.tty = mode & 1};
        int rc = 0;
        for (size_t off = 0; rc == 0 && off < size; off += chunk)
            rc = wd_demux_feed(&m, data + off, size - off < chunk ? size - off : chunk, sink,
                               &total, &err);
        if (rc == 0)
            rc = wd_demux_end(&m, &err);
        if (total > size)
            __builtin_trap();
        wd_demux_free(&m);
    }
    wd_err_free(&err);
    return 0;
}
