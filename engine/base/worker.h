/* engine/base/worker.h - one thread beside the event loop for slow work (the log path: decoding a
 * weavelet's log batch, formatting it, appending it to the log file), so a flooding weavelet
 * costs the loop a memcpy, not a write. Jobs run in the order they were submitted; each one's
 * done function then runs on the loop thread (wd_loop_post). */
#ifndef WD_ENGINE_WORKER_H
#define WD_ENGINE_WORKER_H

#include "engine/base/loop.h"

#include <stdbool.h>
#include <stddef.h>

struct wd_worker;

typedef void (*wd_work_fn)(void *arg); /* on the worker's thread */
typedef void (*wd_done_fn)(void *arg); /* afterwards, on the loop's thread; may be NULL */

/* wd_worker_new - start the thread, its priority lowered by @nice_incr (0: as ours) and every
 * signal blocked in it. At most @max_bytes of jobs wait: a submit beyond that waits for the
 * thread to catch up (backpressure on the caller, with order kept). NULL if the thread cannot
 * start (errno set). */
struct wd_worker *wd_worker_new(struct wd_loop *l, size_t max_bytes, int nice_incr);

/* wd_worker_submit - queue work(arg), then done(arg) on the loop. @bytes is what the job holds,
 * for the bound. Call from the loop's thread only. */
void wd_worker_submit(struct wd_worker *w, wd_work_fn work, wd_done_fn done, void *arg,
                      size_t bytes);

/* wd_worker_pending - bytes of the jobs submitted and not finished yet. */
size_t wd_worker_pending(struct wd_worker *w);

/* wd_worker_free - run what is queued, stop and join the thread. The done functions of the
 * last jobs are posted to the loop: run them with wd_loop_drain. NULL-safe. */
void wd_worker_free(struct wd_worker *w);

#endif
