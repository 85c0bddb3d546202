#include "engine/log.h"

#include <stdarg.h>
#include <stdio.h>

/* The one process-wide mutable: written once by main before any thread starts. */
static enum wd_log_level level = WD_LOG_WARN;

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
    fprintf(stderr, "weaver-docker: %s: %s\n", names[lvl], line);
}
