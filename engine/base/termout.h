/* engine/base/termout.h - output to a terminal (or a pipe) that never blocks the one who writes.
 * Whole lines go to a bounded queue; one thread of its own writes them to the descriptor. When
 * the reader falls behind (a paused terminal, `up | less` scrolled back, a slow ssh session)
 * and the queue is full, the oldest queued lines are dropped and, once the reader drains, one
 * marker line says how many (the deployment's log file has them all). Thread-safe. */
#ifndef WD_ENGINE_TERMOUT_H
#define WD_ENGINE_TERMOUT_H

#include <stdbool.h>
#include <stddef.h>

struct wd_termout;

/* What a deployment's terminal may hold back before it drops lines (its log file keeps all). */
#define WD_TERM_QUEUE_BYTES (4u << 20)
/* How long the end of a run waits for a slow terminal to take what is queued. */
#define WD_TERM_CLOSE_MS 2000

/* wd_termout_new - a writer to @fd (not closed by us) queueing at most @max_bytes. The marker
 * line reads "… N lines not shown (HINT)"; @hint may be "". */
struct wd_termout *wd_termout_new(int fd, size_t max_bytes, const char *hint);

/* wd_termout_write - queue @len bytes (one or more whole lines). Never blocks on the reader. */
void wd_termout_write(struct wd_termout *t, const char *data, size_t len);
void wd_termout_printf(struct wd_termout *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* wd_termout_dropped - lines dropped so far. */
size_t wd_termout_dropped(struct wd_termout *t);

/* wd_termout_close - write out what is queued for at most @wait_ms, then end. A writer still
 * blocked by its reader after that is left behind (the process is about to exit) and the
 * object with it; otherwise everything is freed. NULL-safe. */
void wd_termout_close(struct wd_termout *t, int wait_ms);

#endif
