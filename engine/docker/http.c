#include "engine/docker/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "engine/base/log.h"

struct wd_http {
    CURL *curl;
    char *path;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Typed setopt wrappers: curl's own type checker is silent for system headers (style.md §3). */
static void set_long(CURL *c, CURLoption o, long v)
{
    (void)curl_easy_setopt(c, o, v);
}
static void set_str(CURL *c, CURLoption o, const char *v)
{
    (void)curl_easy_setopt(c, o, v);
}
static void set_ptr(CURL *c, CURLoption o, const void *v)
{
    (void)curl_easy_setopt(c, o, v);
}
static void set_off(CURL *c, CURLoption o, curl_off_t v)
{
    (void)curl_easy_setopt(c, o, v);
}

int wd_http_new(const char *socket_path, struct wd_http **out, struct wd_error **err)
{
    size_t n = strlen(socket_path);
    if (n == 0)
        return wd_err(err, EINVAL, "engine socket path is empty");
    if (n > WD_HTTP_SUN_PATH_MAX)
        return wd_err(err, ENAMETOOLONG,
                      "engine socket path %s is %zu bytes long; a unix socket path holds at most "
                      "%d",
                      socket_path, n, WD_HTTP_SUN_PATH_MAX);
    pthread_once(&global_once, global_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        static const char msg[] = "weaver-docker: out of memory\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
    struct wd_http *h = xzalloc(sizeof *h);
    h->curl = c;
    h->path = xstrdup(socket_path);
    *out = h;
    return 0;
}

void wd_http_free(struct wd_http *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    free(h->path);
    free(h);
}

const char *wd_http_socket_path(const struct wd_http *h)
{
    return h->path;
}

void wd_http_response_free(struct wd_http_response *r)
{
    if (r == NULL)
        return;
    wd_buf_free(&r->body);
    free(r->api_version);
    free(r->server);
    free(r->libpod_api_version);
    free(r->content_type);
    r->api_version = r->server = r->libpod_api_version = r->content_type = NULL;
}

char *wd_http_header_value(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return NULL;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return xstrndup(v, (size_t)(end - v));
}

char *wd_http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(3 * n + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = 0;
    return out;
}

struct xfer {
    struct wd_http *h;
    const struct wd_http_request *rq;
    struct wd_http_response *rs;
    int sink_rc;
    bool overflow;
    bool headers_signalled;
};

static void replace(char **slot, char *v)
{
    if (v == NULL)
        return;
    free(*slot);
    *slot = v;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * nmemb;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* a new response (e.g. after 100 Continue): forget the previous headers */
        wd_http_response_free(x->rs);
        return len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        long status = 0;
        (void)curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && !x->headers_signalled && x->rq->on_headers) {
            x->headers_signalled = true;
            x->rq->on_headers(x->rq->headers_arg, status);
        }
        return len;
    }
    replace(&x->rs->api_version, wd_http_header_value(data, len, "Api-Version"));
    replace(&x->rs->server, wd_http_header_value(data, len, "Server"));
    replace(&x->rs->libpod_api_version, wd_http_header_value(data, len, "Libpod-Api-Version"));
    replace(&x->rs->content_type, wd_http_header_value(data, len, "Content-Type"));
    return len;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * nmemb;
    long status = 0;
    (void)curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &status);
    if (x->rq->sink && status >= 200 && status < 300) {
        int rc = x->rq->sink(x->rq->sink_arg, (const uint8_t *)data, len);
        if (rc < 0) {
            x->sink_rc = rc;
            return 0; /* aborts with CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (wd_buf_append(&x->rs->body, data, len) < 0) {
        x->overflow = true;
        return 0;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    (void)dlt, (void)dln, (void)ult, (void)uln;
    const struct xfer *x = arg;
    return x->rq->cancel && atomic_load(x->rq->cancel) ? 1 : 0;
}

static int map_curl(struct wd_http *h, const struct wd_http_request *rq, struct xfer *x,
                    CURLcode rc, struct wd_error **err)
{
    const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT: {
        long os = 0;
        (void)curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &os);
        int e = os > 0 && os < 4096 ? (int)os : ECONNREFUSED;
        return wd_err_sys(err, e, "connect to %s", h->path);
    }
    case CURLE_WRITE_ERROR:
        if (x->overflow)
            return wd_err(err, EMSGSIZE, "%s %s: reply body exceeds %zu bytes", rq->method,
                          rq->path, x->rs->body.max);
        if (x->sink_rc < 0) {
            if (rq->sink_err && *rq->sink_err) {
                *err = *rq->sink_err;
                *rq->sink_err = NULL;
                return -(*err)->errnum;
            }
            return wd_err_sys(err, -x->sink_rc, "%s %s: reading the reply", rq->method, rq->path);
        }
        return wd_err(err, EIO, "%s %s: %s", rq->method, rq->path, detail);
    case CURLE_ABORTED_BY_CALLBACK:
        return wd_err(err, ECANCELED, "%s %s: cancelled", rq->method, rq->path);
    case CURLE_OPERATION_TIMEDOUT:
        return wd_err(err, ETIMEDOUT, "%s %s: no complete reply in time (%s)", rq->method, rq->path,
                      detail);
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return wd_err(err, ECONNRESET, "%s %s: connection to %s closed mid-request (%s)",
                      rq->method, rq->path, h->path, detail);
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
        return wd_err(err, EPROTO, "%s %s: %s does not answer HTTP (%s)", rq->method, rq->path,
                      h->path, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
        return wd_err(err, ENAMETOOLONG, "connect to %s: %s", h->path, detail);
    default:
        return wd_err(err, EIO, "%s %s: %s", rq->method, rq->path, detail);
    }
}

int wd_http_do(struct wd_http *h, const struct wd_http_request *rq, struct wd_http_response *rs,
               struct wd_error **err)
{
    CURL *c = h->curl;
    curl_easy_reset(c); /* keeps the connection cache: keep-alive survives */
    h->errbuf[0] = 0;
    rs->body.max = rq->max_body ? rq->max_body : WD_MAX_HTTP_BODY;
    struct xfer x = {.h = h, .rq = rq, .rs = rs};

    autofree char *url = xasprintf("http://localhost%s", rq->path);
    set_str(c, CURLOPT_UNIX_SOCKET_PATH, h->path);
    set_str(c, CURLOPT_URL, url);
    set_ptr(c, CURLOPT_ERRORBUFFER, h->errbuf);
    set_long(c, CURLOPT_NOSIGNAL, 1L);
    set_long(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    set_long(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    set_ptr(c, CURLOPT_WRITEFUNCTION, (const void *)on_write);
    set_ptr(c, CURLOPT_WRITEDATA, &x);
    set_ptr(c, CURLOPT_HEADERFUNCTION, (const void *)on_header);
    set_ptr(c, CURLOPT_HEADERDATA, &x);
    if (rq->cancel) {
        set_ptr(c, CURLOPT_XFERINFOFUNCTION, (const void *)on_progress);
        set_ptr(c, CURLOPT_XFERINFODATA, &x);
        set_long(c, CURLOPT_NOPROGRESS, 0L);
    }

    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    bool is_post = strcmp(rq->method, "POST") == 0, is_put = strcmp(rq->method, "PUT") == 0;
    if (is_post || is_put) {
        if (rq->body) {
            autofree char *ct = xasprintf("Content-Type: %s",
                                          rq->content_type ? rq->content_type : "application/json");
            hdrs = curl_slist_append(hdrs, ct);
        }
        /* an explicit (possibly empty) body: never chunked (docker-engine.md §1.2) */
        set_long(c, CURLOPT_POST, 1L);
        set_ptr(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        set_off(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(rq->body ? rq->body_len : 0));
        if (is_put)
            set_str(c, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (strcmp(rq->method, "HEAD") == 0) {
        set_long(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(rq->method, "GET") == 0) {
        set_long(c, CURLOPT_HTTPGET, 1L);
    } else {
        set_str(c, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    set_ptr(c, CURLOPT_HTTPHEADER, hdrs);

    int64_t t0 = wd_now_ns();
    CURLcode rc = curl_easy_perform(c);
    rs->elapsed_us = (wd_now_ns() - t0) / 1000;
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rs->status);
    set_ptr(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        wd_debug("%s %s -> %s (%lld us)", rq->method, rq->path, curl_easy_strerror(rc),
                 (long long)rs->elapsed_us);
        return map_curl(h, rq, &x, rc, err);
    }
    wd_debug("%s %s -> %ld (%lld us)", rq->method, rq->path, rs->status, (long long)rs->elapsed_us);
    if (rs->status < 100)
        return wd_err(err, EPROTO, "%s %s: %s sent no HTTP status", rq->method, rq->path, h->path);
    return 0;
}
