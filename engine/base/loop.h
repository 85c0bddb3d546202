/* engine/base/loop.h - a single-threaded epoll event loop with fd watches, timers, signals (via
 * signalfd) and a wake-up eventfd for work posted from other threads. */
#ifndef WD_LOOP_H
#define WD_LOOP_H

#include "engine/base/error.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct wd_loop;
struct wd_watch;
struct wd_timer;

enum { WD_EV_IN = 1, WD_EV_OUT = 2, WD_EV_ERR = 4 };

typedef void (*wd_watch_fn)(struct wd_watch *w, int fd, unsigned events, void *arg);
/* A timer is freed before its callback runs: @t is always NULL there (clear your pointer to it). */
typedef void (*wd_timer_fn)(struct wd_timer *t, void *arg);
typedef void (*wd_signal_fn)(int sig, void *arg);
typedef void (*wd_post_fn)(void *arg);

/* Create a loop that handles the signals in *sigs (they are blocked in the calling thread;
 * block them before starting other threads). Caller owns *out (wd_loop_free). */
int wd_loop_new(const int *sigs, size_t nsigs, wd_signal_fn on_signal, void *arg,
                struct wd_loop **out, struct wd_error **err);
void wd_loop_free(struct wd_loop *l);

/* Watch fd for events (WD_EV_IN/OUT). The watch is owned by the loop until wd_watch_free. */
struct wd_watch *wd_watch_add(struct wd_loop *l, int fd, unsigned events, wd_watch_fn fn,
                              void *arg);
void wd_watch_set(struct wd_watch *w, unsigned events);
/* Stop watching (does not close fd). Safe to call from inside the watch's own callback. */
void wd_watch_free(struct wd_watch *w);

/* A listener's accept failed with err: for running out of descriptors or memory (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM) stop watching it for ms milliseconds and return true, so a
 * level-triggered listener with a queued connection does not spin; for anything else return
 * false. The watch's old events come back after the pause (unless wd_watch_set or
 * wd_watch_free came first). */
bool wd_watch_accept_failed(struct wd_watch *w, int err, int64_t ms);

/* One-shot timer after delay_ms. Returns a handle valid until it fires or is cancelled. */
struct wd_timer *wd_timer_add(struct wd_loop *l, int64_t delay_ms, wd_timer_fn fn, void *arg);
void wd_timer_cancel(struct wd_timer *t); /* NULL-safe; not after it fired */

/* Run fn(arg) on the loop thread soon. Thread-safe. */
void wd_loop_post(struct wd_loop *l, wd_post_fn fn, void *arg);

/* Run the functions posted so far (after the loop stopped, to let workers' results land). */
void wd_loop_run_posts(struct wd_loop *l);

/* After the loop stopped: run every pending timer (now, whatever its due time) and posted
 * function until none is left, so deferred frees and closes complete. */
void wd_loop_drain(struct wd_loop *l);

/* Run until wd_loop_stop. Returns 0 or <0 on an epoll failure. */
int wd_loop_run(struct wd_loop *l, struct wd_error **err);
void wd_loop_stop(struct wd_loop *l);

#endif
