/* engine/weaver/logfmt.h - weaver's log line formats, decoupled from protobuf: the pretty format of
 * `weaver multi` (runtime/logging/pretty.go; weaver-protocol.md §7.5) and one JSON object per
 * entry. Pure functions over struct wd_buf: no I/O here. */
#ifndef WD_ENGINE_LOGFMT_H
#define WD_ENGINE_LOGFMT_H

#include "engine/base/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One log entry; every pointer is borrowed, and a NULL string reads as "". attrs holds nattrs
 * strings, alternating key and value (an odd last key is ignored). */
struct wd_log_entry {
    const char *app, *version, *component, *node; /* version = deployment id, node = weavelet id */
    int64_t time_micros;                           /* since the Unix epoch */
    const char *level, *file;
    int32_t line; /* -1 = no source location */
    const char *msg;
    const char *const *attrs;
    size_t nattrs;
};

#define WD_LOG_SYSTEM_ATTR "serviceweaver/system"

/* A pretty printer. It remembers the previous entry's second (for the dim timestamp) and the
 * component and source column widths, which only grow. Not thread-safe: use one per output. */
struct wd_logfmt;

/* wd_logfmt_new - a printer that emits ANSI colours when @color (see wd_logfmt_color_enabled).
 * Caller owns the result (wd_logfmt_free). */
struct wd_logfmt *wd_logfmt_new(bool color);
void wd_logfmt_free(struct wd_logfmt *f); /* NULL-safe */

/* wd_logfmt_format - append one pretty line for @e to @out, without a trailing newline.
 * Timestamps are in local time (TZ). @out should have no cap (max = 0): if appending would
 * exceed a cap, nothing is appended. */
void wd_logfmt_format(struct wd_logfmt *f, const struct wd_log_entry *e, struct wd_buf *out);

/* wd_logfmt_json - append one JSON object (no trailing newline) with the keys time (RFC 3339,
 * local time, microseconds), level, app, deployment, component (full name), weavelet, file,
 * line, msg and attrs (an object; for a repeated key the first value wins). Invalid UTF-8 is
 * replaced by U+FFFD. Same cap rule as wd_logfmt_format. */
void wd_logfmt_json(const struct wd_log_entry *e, struct wd_buf *out);

/* wd_log_entry_is_system - the entry carries the attribute serviceweaver/system (such entries
 * are stored but not pretty-printed to the deployer's stderr). */
bool wd_log_entry_is_system(const struct wd_log_entry *e);

/* wd_logfmt_color_enabled - weaver's rule: NO_COLOR unset, TERM != "dumb", and both stdout and
 * stderr are terminals. */
bool wd_logfmt_color_enabled(void);

#endif
