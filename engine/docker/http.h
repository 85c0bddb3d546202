/* engine/docker/http.h - HTTP/1.1 over a unix socket (libcurl), one easy handle per struct wd_http.
 * A struct wd_http is not thread-safe: give each thread its own (they are cheap). No public
 * header exposes CURL *. The engine-specific meaning of replies lives in engine/docker/docker.c. */
#ifndef WD_ENGINE_HTTP_H
#define WD_ENGINE_HTTP_H

#include "engine/base/error.h"
#include "engine/base/util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef WD_MAX_HTTP_BODY
#define WD_MAX_HTTP_BODY (16u << 20) /* buffered reply bodies */
#endif
#define WD_HTTP_SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */

struct wd_http;

/* Streaming body sink: called with each piece of a 2xx body. Return 0 to go on, or a negative
 * errno to abort the transfer (wd_http_do then fails with that value; the sink must have set
 * its own error message, see wd_http_request.sink_err). */
typedef int (*wd_http_sink_fn)(void *arg, const uint8_t *data, size_t len);
/* Called once when the response headers are complete (status is the final status). */
typedef void (*wd_http_headers_fn)(void *arg, long status);

struct wd_http_request {
    const char *method;       /* GET, HEAD, POST, PUT, DELETE */
    const char *path;         /* "/v1.41/containers/json?all=1", already escaped */
    const char *content_type; /* for a body; NULL = application/json when body != NULL */
    const void *body;         /* borrowed; POST/PUT without body send an explicit empty one */
    size_t body_len;
    long timeout_ms;      /* 0 = no overall timeout (streams) */
    size_t max_body;      /* cap for the buffered body; 0 = WD_MAX_HTTP_BODY */
    wd_http_sink_fn sink; /* NULL = buffer the body in the response */
    void *sink_arg;
    wd_http_headers_fn on_headers;
    void *headers_arg;
    const atomic_int *cancel;   /* if non-NULL and set, the transfer is aborted (-ECANCELED) */
    struct wd_error **sink_err; /* where the sink puts its error; moved to *err on abort */
};

struct wd_http_response {
    long status;
    struct wd_buf body;       /* buffered body (always for status >= 300) */
    char *api_version;        /* Api-Version header or NULL */
    char *server;             /* Server header or NULL */
    char *libpod_api_version; /* Libpod-Api-Version header (Podman only) or NULL */
    char *content_type;       /* Content-Type header or NULL */
    int64_t elapsed_us;       /* whole request */
};
/* wd_http_response_free - free what the response owns (NULL-safe; struct itself untouched). */
void wd_http_response_free(struct wd_http_response *r);
#define autoresponse __attribute__((cleanup(wd_http_response_free)))

/* wd_http_new - a client for the unix socket @socket_path (copied). Fails with -ENAMETOOLONG
 * when the path does not fit in sun_path (libcurl would report a misleading resolve error).
 * Caller owns *out (wd_http_free). */
int wd_http_new(const char *socket_path, struct wd_http **out, struct wd_error **err);
/* wd_http_free - NULL-safe. */
void wd_http_free(struct wd_http *h);
const char *wd_http_socket_path(const struct wd_http *h);

/* wd_http_do - perform one request. *rs must be zeroed by the caller; it is filled on return
 * (also on failure, as far as the reply got). Returns 0 when a complete HTTP response was read
 * (any status), or <0 with *err set:
 *   -ENOENT socket missing, -EACCES permission denied, -ECONNREFUSED nobody listening,
 *   -EPROTO not HTTP, -ECONNRESET connection lost mid-request, -ETIMEDOUT, -EMSGSIZE body over
 *   the cap, -ECANCELED cancelled, or the sink's own negative value. */
int wd_http_do(struct wd_http *h, const struct wd_http_request *rq, struct wd_http_response *rs,
               struct wd_error **err);

/* wd_http_escape - percent-encode s for a query value (RFC 3986 unreserved kept). Caller frees. */
char *wd_http_escape(const char *s);

/* wd_http_header_value - if @line ("Name: value\r\n") has header @name (case-insensitive),
 * return a new copy of the trimmed value (caller frees), else NULL. Pure; unit-tested. */
char *wd_http_header_value(const char *line, size_t len, const char *name);

#endif
