#include "engine/base/log.h"

#include <stdarg.h>
#include <stdio.h>

/* The one process-wide mutable: written once by main before any thread starts. */
static enum wd_log_level level = WD_LOG_WARN;

/* Where lines go instead of stderr while a deployment runs (its terminal writer). */
static void (*sink)(void *arg, const char *line, size_t len);
static void *sink_arg;

void wd_log_set_sink(void (*fn)(void *arg, const char *line, size_t len), void *arg)
{
    sink = fn;
    sink_arg = arg;
}

void wd_log_set_level(enum wd_log_level lvl) { level = lvl; }
enum wd_log_level wd_log_get_level(void) { return level; }

void wd_log(enum wd_log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (lvl > level)
        return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (sink) {
        char out[4200];
        int n = snprintf(out, sizeof out, "weaver-docker: %s: %s\n", names[lvl], line);
        if (n > 0)
            sink(sink_arg, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
        return;
    }
    fprintf(stderr, "weaver-docker: %s: %s\n", names[lvl], line);
}
