/* engine/base/log.h - diagnostics of weaver-docker itself, to stderr.
 * (Weavelet log entries are printed by engine/weaver/logfmt.h, not here.) */
#ifndef WD_LOG_H
#define WD_LOG_H

enum wd_log_level { WD_LOG_ERROR, WD_LOG_WARN, WD_LOG_INFO, WD_LOG_DEBUG };

/* Process-wide level, set once by main (WEAVER_LOG=debug|info|warn|error overrides -v). */
void wd_log_set_level(enum wd_log_level lvl);
enum wd_log_level wd_log_get_level(void);
/* Lines to @fn instead of stderr (NULL: stderr again). Set while no other thread logs. */
#include <stddef.h>
void wd_log_set_sink(void (*fn)(void *arg, const char *line, size_t len), void *arg);
void wd_log(enum wd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define wd_warn(...) wd_log(WD_LOG_WARN, __VA_ARGS__)
#define wd_info(...) wd_log(WD_LOG_INFO, __VA_ARGS__)
#define wd_debug(...) wd_log(WD_LOG_DEBUG, __VA_ARGS__)

#endif
