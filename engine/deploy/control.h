/* engine/deploy/control.h - the deployer's control API transport (docs/design/control-api.md):
 * HTTP/1.1 with Content-Length bodies on a unix socket (trusted callers: our uid or root) and,
 * optionally, TCP addresses for public routes such as /metrics. Served on the loop thread;
 * routing and JSON are the handler's business. Also the client the CLI uses to call it. */
#ifndef WD_CONTROL_H
#define WD_CONTROL_H

#include "engine/base/error.h"
#include "engine/base/loop.h"
#include "engine/base/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WD_CONTROL_MAX_HEAD (16 * 1024)  /* request line + headers */
#define WD_CONTROL_MAX_BODY (1024 * 1024) /* request body */
#define WD_CONTROL_MAX_CONNS 64          /* more are closed at accept */
#define WD_CONTROL_IDLE_MS 30000         /* default idle timeout of a connection */
#define WD_CONTROL_MAX_FDS 16            /* descriptors passed with one answer */

struct wd_control;

/* One request, borrowed: valid only during the handler call (copy what you keep). */
struct wd_control_req {
    const char *method; /* "GET", "POST", ... (case as sent) */
    const char *path;   /* "/v1/status": percent-decoded, without the query */
    const char *query;  /* raw query after '?', "" if none */
    const uint8_t *body;
    size_t body_len;
    bool trusted; /* came in on the unix socket from our uid or root */
};

/* One request waiting for its answer. Owned by the server until wd_control_respond. */
struct wd_control_exchange;

typedef void (*wd_control_fn)(void *arg, struct wd_control_exchange *x,
                              const struct wd_control_req *req);

/* wd_control_respond - answer @x with @status, @content_type (NULL: application/json) and
 * @len bytes of @body (copied). Call it exactly once per exchange, on the loop thread: inside
 * the handler or later (a timer, another callback). If the client went away meanwhile, or the
 * server was freed, the answer is dropped; x is freed either way and must not be used again. */
void wd_control_respond(struct wd_control_exchange *x, int status, const char *content_type,
                        const void *body, size_t len);

/* wd_control_respond_fds - the same, passing @nfds descriptors (dup'ed here; the caller keeps
 * its own) with the answer's first bytes (SCM_RIGHTS): how a deployer hands its listening
 * sockets to the next version (engine/deploy/rollout.c). All or none: returns 0 when they are
 * queued with the answer, or <0 when another answer went instead (-EPERM not a trusted unix
 * peer: 403; -E2BIG over WD_CONTROL_MAX_FDS: 500; a dup failed: 500; -ECONNRESET the client
 * went away: nothing). */
int wd_control_respond_fds(struct wd_control_exchange *x, int status, const char *content_type,
                           const void *body, size_t len, const int *fds, size_t nfds);

/* wd_control_listen_unix - serve fn(arg, ...) on a new unix socket at @path (borrowed).
 * The socket is bound in a private (0700) directory beside @path, given mode 0600 there and
 * renamed into place, so it is never reachable with a wider mode. An existing socket at @path
 * is replaced only if nobody answers on it. Each connection's peer (SO_PEERCRED) must be our
 * uid or root, else it gets a 403 and is closed. On success *out is the server (caller frees
 * with wd_control_free). Returns 0, or <0 with *err set: -EADDRINUSE a live server holds
 * @path, -EEXIST @path is not a socket, -ENAMETOOLONG path too long for a unix socket, or a
 * syscall's errno. */
int wd_control_listen_unix(struct wd_loop *l, const char *path, wd_control_fn fn, void *arg,
                           struct wd_control **out, struct wd_error **err);

/* wd_control_listen_tcp - also serve on TCP @hostport ("127.0.0.1:9090", "[::1]:0", ":9090"
 * for all interfaces); requests from there have trusted=false. On success *bound is the bound
 * address ("127.0.0.1:9090", "[::1]:41234"), caller-owned (free). Returns 0, or <0 with *err
 * set: -EINVAL bad or unresolvable address, -EADDRINUSE the port is taken (the message names
 * the address), or a syscall's errno. */
int wd_control_listen_tcp(struct wd_control *c, const char *hostport, char **bound,
                          struct wd_error **err);

/* wd_control_set_idle_ms - close a connection after @ms without progress while no request of
 * it is with the handler (default WD_CONTROL_IDLE_MS). For tests. */
void wd_control_set_idle_ms(struct wd_control *c, int64_t ms);

/* wd_control_nconns - open connections (tests). */
size_t wd_control_nconns(const struct wd_control *c);

/* wd_control_free - close every listener and connection and unlink the unix socket (if it is
 * still ours). Exchanges still pending stay valid: their wd_control_respond drops the answer
 * and frees them. NULL-safe. May be called from a handler (the memory goes when it returns). */
void wd_control_free(struct wd_control *c);

/* wd_control_parse - parse one request at the start of @buf (@len bytes, not necessarily
 * NUL-terminated). Returns the bytes the whole request takes (head + Content-Length body) when
 * @buf holds all of it, 0 when more is needed, or -status for a bad request: -400 malformed,
 * -413 head over WD_CONTROL_MAX_HEAD or body over WD_CONTROL_MAX_BODY, -501
 * Transfer-Encoding, -505 not HTTP/1.x. On a positive return @req points into @tmp (method,
 * decoded path, query: NUL-terminated; tmp is reset first and caller-owned, wd_buf_free) and
 * into @buf (body); req->trusted is false. */
ssize_t wd_control_parse(const char *buf, size_t len, struct wd_control_req *req,
                         struct wd_buf *tmp);

/* wd_control_query - the percent-decoded value of @key in a query string ("a=1&log=x%20y";
 * '+' is a space), or NULL when absent or badly escaped. Caller frees. */
char *wd_control_query(const char *query, const char *key);

/* wd_control_call - one request to the control socket at @sock (borrowed): @method @path
 * (path plus optional query, already encoded) with @len bytes of @body (NULL/0: none; sent as
 * application/json). Waits at most @timeout_ms in all. On success *status is the HTTP status
 * and the answer's body is appended to @resp (caller-owned; its max, if set, is honoured).
 * Returns 0 for any HTTP status, or <0 with *err set: -ENOENT no socket at @sock,
 * -ECONNREFUSED nobody serves on it (a stale socket), -EACCES not ours, -ETIMEDOUT no whole
 * answer in time, -EPROTO a malformed answer, -EMSGSIZE an answer over the limit, -EINVAL bad
 * arguments. Plain blocking-free sockets and poll; no threads. */
int wd_control_call(const char *sock, const char *method, const char *path, const void *body,
                    size_t len, int timeout_ms, int *status, struct wd_buf *resp,
                    struct wd_error **err);

/* wd_control_call_fds - wd_control_call that also takes descriptors the answer carries: up to
 * @maxfds into @fds (caller closes them), *nfds of them; any more are closed. */
int wd_control_call_fds(const char *sock, const char *method, const char *path, const void *body,
                        size_t len, int timeout_ms, int *status, struct wd_buf *resp, int *fds,
                        size_t maxfds, size_t *nfds, struct wd_error **err);

#endif
