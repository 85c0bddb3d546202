/* engine/docker/docker.c - Docker Engine API client over a unix socket (docs/docker-engine.md). */
#include "engine/docker/docker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine/docker/docker_internal.h"
#include "engine/docker/http.h"
#include "engine/docker/json.h"
#include "engine/base/log.h"
#include "engine/base/util.h"

#ifndef WD_VERSION
#define WD_VERSION "0.0.0"
#endif

#define DEFAULT_TIMEOUT_MS 60000L
#define CALL_TIMEOUT_MS (d->timeout_ms)

struct wd_docker {
    struct wd_http *http;
    char *socket;
    char *source;
    char *server_version;
    char api[16];
    bool podman;
    struct wd_label *extra; /* WD_LABEL_OWNER + WEAVER_DOCKER_LABELS */
    size_t nextra;
    long timeout_ms;          /* one call's limit (WEAVER_DOCKER_ENGINE_TIMEOUT) */
    const atomic_int *cancel; /* aborts every call of this handle once set; may be NULL */
};

/* ---- handle ---- */

void wd_docker_free(struct wd_docker *d)
{
    if (d == NULL)
        return;
    wd_http_free(d->http);
    free(d->socket);
    free(d->source);
    free(d->server_version);
    wd_labels_free(d->extra, d->nextra);
    free(d);
}

void wd_docker_freep(struct wd_docker **d)
{
    wd_docker_free(*d);
    *d = NULL;
}

struct wd_docker *wd_docker_clone(const struct wd_docker *d)
{
    struct wd_docker *c = xzalloc(sizeof *c);
    autoerr struct wd_error *e = NULL;
    /* cannot fail: the path was accepted by wd_http_new already */
    if (wd_http_new(d->socket, &c->http, &e) < 0)
        abort();
    c->socket = xstrdup(d->socket);
    c->source = xstrdup(d->source);
    c->server_version = xstrdup(d->server_version);
    memcpy(c->api, d->api, sizeof c->api);
    c->podman = d->podman;
    c->extra = xcalloc(d->nextra ? d->nextra : 1, sizeof *c->extra);
    for (size_t i = 0; i < d->nextra; i++) {
        c->extra[i].key = xstrdup(d->extra[i].key);
        c->extra[i].value = xstrdup(d->extra[i].value);
    }
    c->nextra = d->nextra;
    c->timeout_ms = d->timeout_ms;
    c->cancel = d->cancel;
    return c;
}

static atomic_uint engine_timeouts;

unsigned wd_docker_timeouts(void)
{
    return atomic_load(&engine_timeouts);
}

bool wd_docker_unreachable(int rc)
{
    return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -ECANCELED;
}

void wd_docker_set_cancel(struct wd_docker *d, const atomic_int *cancel)
{
    d->cancel = cancel;
}

long wd_docker_timeout_ms(const struct wd_docker *d)
{
    return d->timeout_ms;
}

int wd_docker_parse_timeout(const char *s, long *ms, struct wd_error **err)
{
    *ms = DEFAULT_TIMEOUT_MS;
    if (s == NULL || *s == 0)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 3600)
        return wd_err(err, EINVAL,
                      "WEAVER_DOCKER_ENGINE_TIMEOUT=\"%s\": want whole seconds from 1 to 3600 "
                      "(the longest one engine call may take; default 60)",
                      s);
    *ms = v * 1000L;
    return 0;
}

const char *wd_docker_socket(const struct wd_docker *d)
{
    return d->socket;
}
const char *wd_docker_source(const struct wd_docker *d)
{
    return d->source;
}
const char *wd_docker_api_version(const struct wd_docker *d)
{
    return d->api;
}
const char *wd_docker_server_version(const struct wd_docker *d)
{
    return d->server_version;
}
bool wd_docker_is_podman(const struct wd_docker *d)
{
    return d->podman;
}
const struct wd_label *wd_docker_extra_labels(const struct wd_docker *d, size_t *n)
{
    *n = d->nextra;
    return d->extra;
}

/* ---- connecting ---- */

static const char start_hint[] =
    "start the engine (Docker: 'sudo systemctl start docker'; Podman: 'systemctl --user start "
    "podman.socket' or 'podman system service --time=0') or set DOCKER_HOST=unix:///path/to/"
    "engine.sock";

/* Replace a transport error from the first contact with a one-line explanation. */
static int explain_connect(const char *path, const char *source, int rc, struct wd_error **err)
{
    autofree char *detail = xstrdup((*err)->msg);
    wd_err_free(err);
    switch (-rc) {
    case ENOENT:
        return wd_err(err, ENOENT, "no container engine at %s (%s): the socket does not exist; %s",
                      path, source, start_hint);
    case ECONNREFUSED:
        return wd_err(err, ECONNREFUSED,
                      "no container engine listening on %s (%s): stale socket; %s", path, source,
                      start_hint);
    case EACCES:
    case EPERM:
        return wd_err(err, EACCES,
                      "permission denied on engine socket %s (%s): add your user to the 'docker' "
                      "group ('sudo usermod -aG docker $USER', then log in again) or run with "
                      "sudo",
                      path, source);
    case ENOTSOCK:
        return wd_err(err, EPROTO, "%s (%s) is not a unix socket", path, source);
    case EPROTO:
    case ECONNRESET:
        return wd_err(err, EPROTO,
                      "%s (%s) is not a Docker or Podman engine socket: it does not answer the "
                      "Engine API (%s)",
                      path, source, detail);
    case ETIMEDOUT:
        return wd_err(err, ETIMEDOUT, "engine at %s (%s) does not answer: %s", path, source,
                      detail);
    default:
        return wd_err(err, -rc, "engine at %s (%s): %s", path, source, detail);
    }
}

static int try_engine(const char *path, const char *source, struct wd_docker **out,
                      struct wd_error **err)
{
    struct wd_http *h = NULL;
    int rc = wd_http_new(path, &h, err);
    if (rc < 0)
        return wd_err_wrap(err, "engine socket (%s)", source);
    struct wd_docker *d = xzalloc(sizeof *d);
    d->http = h;
    d->socket = xstrdup(path);
    d->source = xstrdup(source);
    autodocker struct wd_docker *dd = d;
    if (wd_docker_parse_timeout(getenv("WEAVER_DOCKER_ENGINE_TIMEOUT"), &d->timeout_ms, err) < 0)
        return -EINVAL;
    long probe_ms = d->timeout_ms < 15000 ? d->timeout_ms : 15000;

    struct wd_http_request ping = {.method = "GET", .path = "/_ping", .timeout_ms = probe_ms};
    autoresponse struct wd_http_response prs = {0};
    rc = wd_http_do(h, &ping, &prs, err);
    if (rc < 0)
        return explain_connect(path, source, rc, err);
    if (prs.api_version == NULL)
        return wd_err(err, EPROTO,
                      "%s (%s) is not a Docker or Podman engine socket: GET /_ping answered "
                      "HTTP %ld without an Api-Version header",
                      path, source, prs.status);
    if (prs.status != 200) {
        autofree char *m = wd_docker_error_message(prs.body.data, prs.body.len);
        return wd_err(err, EIO, "engine at %s (%s) is not ready: GET /_ping: engine %ld: %s", path,
                      source, prs.status, m);
    }

    autofree char *vpath = xasprintf("/v%s/version", prs.api_version);
    struct wd_http_request vq = {.method = "GET", .path = vpath, .timeout_ms = probe_ms};
    autoresponse struct wd_http_response vrs = {0};
    rc = wd_http_do(h, &vq, &vrs, err);
    if (rc < 0)
        return explain_connect(path, source, rc, err);
    if (vrs.status != 200) {
        autofree char *m = wd_docker_error_message(vrs.body.data, vrs.body.len);
        int e = wd_docker_status_errno(vrs.status, m);
        return wd_err(err, e ? e : EIO, "engine at %s (%s): GET /version: engine %ld: %s", path,
                      source, vrs.status, m);
    }
    autojson cJSON *vdoc = NULL;
    struct wd_engine_version ver = {0};
    if (wd_json_parse(vrs.body.data, vrs.body.len, "version reply", &vdoc, err) < 0 ||
        wd_docker_parse_version(vdoc, &ver, err) < 0)
        return wd_err_wrap(err, "engine at %s (%s)", path, source);
    bool warn = false;
    rc = wd_docker_negotiate(ver.api_version, ver.min_api_version, d->api, &warn, err);
    if (rc < 0) {
        wd_engine_version_free(&ver);
        return wd_err_wrap(err, "engine at %s (%s)", path, source);
    }
    if (warn)
        wd_warn("engine %s requires API %s or newer; weaver-docker was tested with %s", path,
                d->api, WD_DOCKER_API_TESTED);
    d->podman = ver.podman || prs.libpod_api_version != NULL;
    d->server_version = xstrdup(ver.version);
    wd_engine_version_free(&ver);

    struct wd_label *l = NULL;
    size_t n = 0;
    if (wd_docker_labels_parse(getenv(WD_LABELS_ENV), &l, &n, err) < 0)
        return -(*err)->errnum;
    d->extra = xcalloc(n + 1, sizeof *d->extra);
    d->extra[0].key = xstrdup(WD_LABEL_OWNER);
    d->extra[0].value = xstrdup("weaver-docker/" WD_VERSION);
    for (size_t i = 0; i < n; i++)
        d->extra[i + 1] = l[i];
    free(l);
    d->nextra = n + 1;
    wd_info("engine: %s %s at %s (%s), API %s", d->podman ? "Podman" : "Docker", d->server_version,
            path, source, d->api);
    *out = WD_STEAL(dd);
    return 0;
}

int wd_docker_connect(const char *host, struct wd_docker **out, struct wd_error **err)
{
    const char *env_src = NULL, *uri = NULL;
    if (host && *host)
        env_src = "--host", uri = host;
    else if (getenv("DOCKER_HOST") && *getenv("DOCKER_HOST"))
        env_src = "DOCKER_HOST", uri = getenv("DOCKER_HOST");
    else if (getenv("CONTAINER_HOST") && *getenv("CONTAINER_HOST"))
        env_src = "CONTAINER_HOST", uri = getenv("CONTAINER_HOST");
    if (uri) {
        autofree char *path = NULL;
        if (wd_docker_parse_host(uri, env_src, &path, err) < 0)
            return -(*err)->errnum;
        return try_engine(path, env_src, out, err);
    }

    const char *xdg = getenv("XDG_RUNTIME_DIR");
    autofree char *xdg_docker = xdg && *xdg ? xasprintf("%s/docker.sock", xdg) : NULL;
    autofree char *xdg_podman = xdg && *xdg ? xasprintf("%s/podman/podman.sock", xdg) : NULL;
    const char *cand[] = {"/var/run/docker.sock", xdg_docker, "/run/podman/podman.sock",
                          xdg_podman};
    struct wd_error *first = NULL;
    int first_rc = 0;
    bool any = false;
    for (size_t i = 0; i < WD_ARRAY_LEN(cand); i++) {
        struct stat st;
        if (cand[i] == NULL || stat(cand[i], &st) < 0)
            continue;
        any = true;
        struct wd_error *e = NULL;
        int rc = try_engine(cand[i], "default", out, &e);
        if (rc == 0) {
            wd_err_free(&first);
            return 0;
        }
        if (first == NULL)
            first = e, first_rc = rc;
        else
            wd_err_free(&e);
    }
    if (any) {
        *err = first;
        return first_rc;
    }
    return wd_err(err, ENOENT,
                  "no container engine found (tried /var/run/docker.sock%s%s, "
                  "/run/podman/podman.sock%s%s): %s",
                  xdg_docker ? ", " : "", xdg_docker ? xdg_docker : "", xdg_podman ? ", " : "",
                  xdg_podman ? xdg_podman : "", start_hint);
}

/* ---- requests ---- */


static int do_call_err(struct wd_docker *d, const struct wd_docker_call *c, struct wd_http_response *rs,
                       const char *what, struct wd_error **err);

/* Callers that do not want the error (best-effort removals) pass NULL. */
int wd_docker_call(struct wd_docker *d, const struct wd_docker_call *c, struct wd_http_response *rs,
                   const char *what, struct wd_error **err)
{
    autoerr struct wd_error *ignored = NULL;
    return do_call_err(d, c, rs, what, err ? err : &ignored);
}

static int do_call_err(struct wd_docker *d, const struct wd_docker_call *c, struct wd_http_response *rs,
                       const char *what, struct wd_error **err)
{
    autofree char *path = xasprintf("/v%s%s", d->api, c->path);
    struct wd_http_request rq = {
        .method = c->method,
        .path = path,
        .content_type = c->content_type,
        .body = c->body,
        .body_len = c->body_len,
        .timeout_ms = c->timeout_ms,
        .sink = c->sink,
        .sink_arg = c->sink_arg,
        .sink_err = c->sink_err,
        .on_headers = c->on_headers,
        .headers_arg = c->headers_arg,
        .cancel = c->cancel ? c->cancel : d->cancel,
    };
    int rc = wd_http_do(d->http, &rq, rs, err);
    if (rc == -ETIMEDOUT && c->timeout_ms > 0) {
        atomic_fetch_add(&engine_timeouts, 1);
        wd_err_free(err);
        return wd_err(err, ETIMEDOUT,
                      "%s: the engine at %s did not answer within %ld s (paused or overloaded? "
                      "WEAVER_DOCKER_ENGINE_TIMEOUT=SECONDS sets the limit)",
                      what, d->socket, c->timeout_ms / 1000);
    }
    if (rc < 0) {
        if (rc == -ENOENT || rc == -ECONNREFUSED) {
            /* never let a vanished socket look like HTTP 404 to callers */
            autofree char *m = xstrdup((*err)->msg);
            wd_err_free(err);
            return wd_err(err, ECONNREFUSED, "%s: engine at %s is gone (%s)", what, d->socket, m);
        }
        if (rc == -ECONNRESET)
            return wd_err_wrap(err, "%s: engine stopped or restarted mid-call", what);
        return wd_err_wrap(err, "%s", what);
    }
    if (rs->status >= 300 && rs->status != 304) {
        autofree char *m = wd_docker_error_message(rs->body.data, rs->body.len);
        int e = wd_docker_status_errno(rs->status, m);
        return wd_err(err, e ? e : EIO, "%s: engine %ld: %s", what, rs->status,
                      *m ? m : "(no message)");
    }
    return 0;
}

static int call_json(struct wd_docker *d, const char *method, const char *path, const cJSON *body,
                     cJSON **reply, long timeout_ms, const char *what, struct wd_error **err)
{
    autofree char *text = body ? wd_json_print(body) : NULL;
    struct wd_docker_call c = {.method = method,
                     .path = path,
                     .body = text,
                     .body_len = text ? strlen(text) : 0,
                     .timeout_ms = timeout_ms};
    autoresponse struct wd_http_response rs = {0};
    int rc = wd_docker_call(d, &c, &rs, what, err);
    if (rc < 0)
        return rc;
    if (reply == NULL)
        return 0;
    *reply = NULL;
    if (rs.body.len == 0)
        return 0;
    if (wd_json_parse(rs.body.data, rs.body.len, "reply", reply, err) < 0)
        return wd_err_wrap(err, "%s", what);
    return 0;
}

int wd_docker_request(struct wd_docker *d, const char *method, const char *path,
                      const struct cJSON *body, struct cJSON **reply, const char *what,
                      struct wd_error **err)
{
    return call_json(d, method, path, body, reply, CALL_TIMEOUT_MS, what, err);
}

/* Path segments we interpolate (IDs, names, tags) must not carry URL syntax. */
int wd_docker_check_ref(const char *kind, const char *ref, struct wd_error **err)
{
    if (ref == NULL || *ref == 0)
        return wd_err(err, EINVAL, "%s: empty name", kind);
    for (const char *p = ref; *p; p++)
        if (*p <= ' ' || *p == '?' || *p == '#' || *p == '%' || (unsigned char)*p >= 0x7f)
            return wd_err(err, EINVAL, "%s '%s': invalid character", kind, ref);
    return 0;
}

/* ---- networks ---- */

int wd_docker_network_create(struct wd_docker *d, const struct wd_network_spec *s, char **id,
                             struct wd_error **err)
{
    autofree char *what = xasprintf("create network %s", s->name ? s->name : "");
    if (wd_docker_check_ref("network", s->name, err) < 0)
        return -(*err)->errnum;
    autojson cJSON *body = wd_docker_network_json(s, d->extra, d->nextra);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "POST", "/networks/create", body, &reply, CALL_TIMEOUT_MS, what, err);
    if (rc < 0)
        return rc;
    const char *nid = wd_json_str(reply, "Id");
    if (nid == NULL)
        return wd_err(err, EPROTO, "%s: reply has no Id", what);
    const char *warning = wd_json_str(reply, "Warning");
    if (warning && *warning)
        wd_warn("%s: %s", what, warning);
    if (id)
        *id = xstrdup(nid);
    return 0;
}

int wd_docker_network_inspect(struct wd_docker *d, const char *name, struct wd_network_info *out,
                              struct wd_error **err)
{
    autofree char *what = xasprintf("inspect network %s", name ? name : "");
    if (wd_docker_check_ref("network", name, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/networks/%s", name);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "GET", path, NULL, &reply, CALL_TIMEOUT_MS, what, err);
    if (rc < 0)
        return rc;
    if (wd_docker_parse_network(reply, out, err) < 0)
        return wd_err_wrap(err, "%s", what);
    return 0;
}

int wd_docker_network_remove(struct wd_docker *d, const char *name, struct wd_error **err)
{
    autofree char *what = xasprintf("remove network %s", name ? name : "");
    if (wd_docker_check_ref("network", name, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/networks/%s", name);
    return call_json(d, "DELETE", path, NULL, NULL, CALL_TIMEOUT_MS, what, err);
}

int wd_docker_network_connect(struct wd_docker *d, const char *network, const char *container,
                              const char *const *aliases, size_t naliases, struct wd_error **err)
{
    autofree char *what =
        xasprintf("connect %s to network %s", container ? container : "", network ? network : "");
    if (wd_docker_check_ref("network", network, err) < 0 || wd_docker_check_ref("container", container, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/networks/%s/connect", network);
    autojson cJSON *body = wd_json_new_object();
    wd_json_add_str(body, "Container", container);
    cJSON *ep = wd_json_add_object(body, "EndpointConfig");
    if (naliases)
        wd_json_arr_add_strv(wd_json_add_array(ep, "Aliases"), aliases, naliases);
    return call_json(d, "POST", path, body, NULL, CALL_TIMEOUT_MS, what, err);
}

/* ---- volumes ---- */

static char *label_query(const char *const *labels, size_t n);

int wd_docker_volume_create(struct wd_docker *d, const char *name, const struct wd_kv *labels,
                            size_t nlabels, bool *created, struct wd_error **err)
{
    autofree char *what = xasprintf("create volume %s", name ? name : "");
    if (wd_docker_check_ref("volume", name, err) < 0)
        return -(*err)->errnum;
    /* the engine answers 201 for an existing volume too: look first to tell which */
    autofree char *path = xasprintf("/volumes/%s", name);
    autojson cJSON *old = NULL;
    autoerr struct wd_error *ierr = NULL;
    int rc = call_json(d, "GET", path, NULL, &old, CALL_TIMEOUT_MS, what, &ierr);
    if (rc == 0) {
        if (created)
            *created = false;
        return 0;
    }
    if (rc != -ENOENT) {
        *err = WD_STEAL(ierr);
        return rc;
    }
    autojson cJSON *body = wd_docker_volume_json(name, labels, nlabels, d->extra, d->nextra);
    rc = call_json(d, "POST", "/volumes/create", body, NULL, CALL_TIMEOUT_MS, what, err);
    if (rc == 0 && created)
        *created = true;
    return rc;
}

int wd_docker_volume_remove(struct wd_docker *d, const char *name, struct wd_error **err)
{
    autofree char *what = xasprintf("remove volume %s", name ? name : "");
    if (wd_docker_check_ref("volume", name, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/volumes/%s", name);
    return call_json(d, "DELETE", path, NULL, NULL, CALL_TIMEOUT_MS, what, err);
}

int wd_docker_volume_list(struct wd_docker *d, const char *const *labels, size_t nlabels,
                          char ***names, size_t *n, struct wd_error **err)
{
    autofree char *f = label_query(labels, nlabels);
    autofree char *path = xasprintf("/volumes?filters=%s", f);
    autojson cJSON *reply = NULL;
    *names = NULL;
    *n = 0;
    int rc = call_json(d, "GET", path, NULL, &reply, CALL_TIMEOUT_MS, "list volumes", err);
    if (rc < 0)
        return rc;
    const cJSON *vols = wd_json_arr(reply, "Volumes"), *v;
    size_t cap = (size_t)cJSON_GetArraySize(vols);
    *names = xcalloc(cap + 1, sizeof **names);
    cJSON_ArrayForEach(v, vols)
    {
        const char *name = wd_json_str(v, "Name");
        if (name && *n < cap)
            (*names)[(*n)++] = xstrdup(name);
    }
    return 0;
}

/* ---- containers ---- */

int wd_docker_container_create(struct wd_docker *d, const struct wd_container_spec *s, char **id,
                               struct wd_error **err)
{
    autofree char *what = xasprintf("create container %s", s->name ? s->name : "");
    if (wd_docker_check_ref("container", s->name, err) < 0 || wd_docker_check_ref("image", s->image, err) < 0)
        return -(*err)->errnum;
    autojson cJSON *body = wd_docker_container_json(s, d->extra, d->nextra);
    autofree char *ename = wd_http_escape(s->name);
    autofree char *path = xasprintf("/containers/create?name=%s", ename);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "POST", path, body, &reply, CALL_TIMEOUT_MS, what, err);
    if (rc < 0)
        return rc;
    const char *cid = wd_json_str(reply, "Id");
    if (cid == NULL)
        return wd_err(err, EPROTO, "%s: reply has no Id", what);
    const cJSON *w;
    cJSON_ArrayForEach(w, wd_json_arr(reply, "Warnings")) if (cJSON_IsString(w))
        wd_warn("%s: %s", what, w->valuestring);
    if (id)
        *id = xstrdup(cid);
    return 0;
}

static int simple_post(struct wd_docker *d, const char *verb, const char *id, const char *query,
                       long timeout_ms, struct wd_error **err)
{
    autofree char *what = xasprintf("%s container %s", verb, id ? id : "");
    if (wd_docker_check_ref("container", id, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/containers/%s/%s%s", id, verb, query ? query : "");
    return call_json(d, "POST", path, NULL, NULL, timeout_ms, what, err);
}

int wd_docker_container_start(struct wd_docker *d, const char *id, struct wd_error **err)
{
    return simple_post(d, "start", id, NULL, CALL_TIMEOUT_MS, err);
}

int wd_docker_container_stop(struct wd_docker *d, const char *id, int timeout_s,
                             struct wd_error **err)
{
    char q[32] = "";
    if (timeout_s >= 0)
        snprintf(q, sizeof q, "?t=%d", timeout_s);
    long to = CALL_TIMEOUT_MS + (timeout_s > 0 ? (long)timeout_s * 1000L : 0);
    return simple_post(d, "stop", id, q, to, err);
}

int wd_docker_container_kill(struct wd_docker *d, const char *id, const char *signal,
                             struct wd_error **err)
{
    autofree char *q = NULL;
    if (signal) {
        autofree char *es = wd_http_escape(signal);
        q = xasprintf("?signal=%s", es);
    }
    return simple_post(d, "kill", id, q, CALL_TIMEOUT_MS, err);
}

int wd_docker_container_wait(struct wd_docker *d, const char *id, const char *condition,
                             int64_t *exit_code, struct wd_error **err)
{
    autofree char *what = xasprintf("wait for container %s", id ? id : "");
    if (wd_docker_check_ref("container", id, err) < 0)
        return -(*err)->errnum;
    autofree char *ec = wd_http_escape(condition ? condition : "not-running");
    autofree char *path = xasprintf("/containers/%s/wait?condition=%s", id, ec);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "POST", path, NULL, &reply, 0, what, err);
    if (rc < 0)
        return rc;
    int64_t code;
    autofree char *m = NULL;
    if (wd_docker_parse_wait(reply, &code, &m, err) < 0)
        return wd_err_wrap(err, "%s", what);
    if (m)
        return wd_err(err, EIO, "%s: engine: %s", what, m);
    *exit_code = code;
    return 0;
}

int wd_docker_container_remove(struct wd_docker *d, const char *id, bool force,
                               struct wd_error **err)
{
    autofree char *what = xasprintf("remove container %s", id ? id : "");
    if (wd_docker_check_ref("container", id, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/containers/%s?force=%d&v=1", id, force ? 1 : 0);
    return call_json(d, "DELETE", path, NULL, NULL, CALL_TIMEOUT_MS, what, err);
}

int wd_docker_container_inspect(struct wd_docker *d, const char *id, const char *network,
                                struct wd_container_info *out, struct wd_error **err)
{
    autofree char *what = xasprintf("inspect container %s", id ? id : "");
    if (wd_docker_check_ref("container", id, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/containers/%s/json", id);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "GET", path, NULL, &reply, CALL_TIMEOUT_MS, what, err);
    if (rc < 0)
        return rc;
    if (wd_docker_parse_container(reply, network, out, err) < 0)
        return wd_err_wrap(err, "%s", what);
    return 0;
}

static char *label_query(const char *const *labels, size_t n)
{
    autofree char *f = wd_docker_filters_json(labels, n, NULL, NULL, 0);
    return wd_http_escape(f);
}

int wd_docker_container_list(struct wd_docker *d, const char *const *labels, size_t nlabels,
                             struct wd_container_summary **out, size_t *n, struct wd_error **err)
{
    autofree char *f = label_query(labels, nlabels);
    autofree char *path = xasprintf("/containers/json?all=1&filters=%s", f);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "GET", path, NULL, &reply, CALL_TIMEOUT_MS, "list containers", err);
    if (rc < 0)
        return rc;
    if (wd_docker_parse_container_list(reply, out, n, err) < 0)
        return wd_err_wrap(err, "list containers");
    return 0;
}

/* ---- parallel jobs ---- */

unsigned wd_docker_default_parallelism(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n * 2 > 8 ? 8u : (unsigned)(n * 2);
}

struct pool {
    struct wd_docker_job *jobs;
    size_t n;
    atomic_size_t next;
};
struct worker {
    struct pool *p;
    struct wd_docker *d;
    bool owned;
    pthread_t thr;
};

static void run_job(struct wd_docker *d, struct wd_docker_job *j)
{
    int64_t t0 = wd_now_ns();
    j->rc = wd_docker_container_create(d, j->spec, &j->id, &j->err);
    int64_t t1 = wd_now_ns();
    j->create_us = (t1 - t0) / 1000;
    if (j->rc < 0 || !j->start)
        return;
    j->rc = wd_docker_container_start(d, j->id, &j->err);
    j->start_us = (wd_now_ns() - t1) / 1000;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&w->p->next, 1);
        if (i >= w->p->n)
            break;
        run_job(w->d, &w->p->jobs[i]);
    }
    return NULL;
}

int wd_docker_run_jobs(struct wd_docker *d, struct wd_docker_job *jobs, size_t njobs,
                       unsigned max_threads, struct wd_error **err)
{
    if (njobs == 0)
        return 0;
    unsigned nt = max_threads ? max_threads : wd_docker_default_parallelism();
    if (nt > njobs)
        nt = (unsigned)njobs;
    struct pool p = {.jobs = jobs, .n = njobs};
    atomic_init(&p.next, 0);
    struct worker *w = xcalloc(nt, sizeof *w);
    unsigned started = 0;
    for (unsigned i = 0; i < nt; i++) {
        w[i].p = &p;
        w[i].owned = i > 0;
        w[i].d = i == 0 ? d : wd_docker_clone(d);
        if (i > 0) {
            if (pthread_create(&w[i].thr, NULL, worker_main, &w[i]) != 0) {
                wd_docker_free(w[i].d);
                w[i].d = NULL;
                break; /* fewer threads; the others pick up the work */
            }
            started++;
        }
    }
    worker_main(&w[0]); /* the caller's thread is worker 0 */
    for (unsigned i = 1; i <= started; i++) {
        pthread_join(w[i].thr, NULL);
        wd_docker_free(w[i].d);
    }
    free(w);
    size_t failed = 0, first = 0;
    for (size_t i = 0; i < njobs; i++)
        if (jobs[i].rc < 0 && failed++ == 0)
            first = i;
    if (failed == 0)
        return 0;
    return wd_err(err, -jobs[first].rc, "%zu of %zu containers failed: %s", failed, njobs,
                  jobs[first].err ? jobs[first].err->msg : "unknown error");
}

void wd_docker_jobs_clear(struct wd_docker_job *jobs, size_t njobs)
{
    for (size_t i = 0; i < njobs; i++) {
        free(jobs[i].id);
        jobs[i].id = NULL;
        wd_err_free(&jobs[i].err);
    }
}

/* ---- images ---- */

int wd_docker_image_inspect(struct wd_docker *d, const char *name, struct wd_image_info *out,
                            struct wd_error **err)
{
    autofree char *what = xasprintf("inspect image %s", name ? name : "");
    if (wd_docker_check_ref("image", name, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/images/%s/json", name);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "GET", path, NULL, &reply, CALL_TIMEOUT_MS, what, err);
    if (rc < 0)
        return rc;
    if (wd_docker_parse_image(reply, out, err) < 0)
        return wd_err_wrap(err, "%s", what);
    return 0;
}

int wd_docker_image_remove(struct wd_docker *d, const char *name, bool force, struct wd_error **err)
{
    autofree char *what = xasprintf("remove image %s", name ? name : "");
    if (wd_docker_check_ref("image", name, err) < 0)
        return -(*err)->errnum;
    autofree char *path = xasprintf("/images/%s?force=%d&noprune=0", name, force ? 1 : 0);
    return call_json(d, "DELETE", path, NULL, NULL, CALL_TIMEOUT_MS, what, err);
}

struct progress_sink {
    struct wd_lines lines;
    struct wd_error *err;
    char *error; /* first error object in the stream */
    char *id;
    char *loaded;
};

static int progress_line(void *arg, const char *line, size_t len)
{
    struct progress_sink *s = arg;
    autojson cJSON *doc = cJSON_ParseWithLength(line, len);
    if (doc == NULL)
        return 0; /* tolerate noise; the status and error objects decide */
    struct wd_progress p;
    wd_docker_parse_progress(doc, &p);
    if (p.error && s->error == NULL)
        s->error = xstrdup(p.error);
    if (p.aux_id) {
        free(s->id);
        s->id = xstrdup(p.aux_id);
    }
    if (p.stream && strncmp(p.stream, "Loaded image", 12) == 0) {
        const char *v = strchr(p.stream, ':');
        v = v ? v + 1 : p.stream;
        while (*v == ' ')
            v++;
        size_t n = strcspn(v, "\r\n");
        free(s->loaded);
        s->loaded = xstrndup(v, n);
    }
    return 0;
}

static int progress_fn(void *arg, const uint8_t *p, size_t n)
{
    struct progress_sink *s = arg;
    return wd_lines_feed(&s->lines, p, n, progress_line, s, &s->err);
}

static int post_tar(struct wd_docker *d, const char *path, const void *tar, size_t len,
                    struct progress_sink *s, const char *what, struct wd_error **err)
{
    struct wd_docker_call c = {.method = "POST",
                     .path = path,
                     .content_type = "application/x-tar",
                     .body = tar,
                     .body_len = len,
                     .timeout_ms = 0,
                     .sink = progress_fn,
                     .sink_arg = s,
                     .sink_err = &s->err};
    autoresponse struct wd_http_response rs = {0};
    int rc = wd_docker_call(d, &c, &rs, what, err);
    if (rc == 0)
        rc = wd_lines_end(&s->lines, progress_line, s, err);
    if (rc == 0 && s->error) /* Docker reports failures inside the 200 stream (§2.4) */
        rc = wd_err(err, wd_docker_status_errno(500, s->error), "%s: engine: %s", what, s->error);
    return rc;
}

static void progress_free(struct progress_sink *s)
{
    wd_lines_free(&s->lines);
    wd_err_free(&s->err);
    free(s->error);
    free(s->id);
    free(s->loaded);
}

int wd_docker_image_load(struct wd_docker *d, const void *tar, size_t len, char **loaded,
                         struct wd_error **err)
{
    struct progress_sink s = {0};
    int rc = post_tar(d, "/images/load?quiet=1", tar, len, &s, "load image", err);
    if (rc == 0 && loaded)
        *loaded = s.loaded ? WD_STEAL(s.loaded) : xstrdup("");
    progress_free(&s);
    return rc;
}

int wd_docker_image_build(struct wd_docker *d, const void *tar, size_t len, const char *tag,
                          const struct wd_kv *labels, size_t nlabels, char **id,
                          struct wd_error **err)
{
    autofree char *what = xasprintf("build image %s", tag);
    autojson cJSON *lj = wd_json_new_object();
    for (size_t i = 0; i < nlabels; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(lj, labels[i].key);
        wd_json_add_str(lj, labels[i].key, labels[i].value);
    }
    for (size_t i = 0; i < d->nextra; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(lj, d->extra[i].key);
        wd_json_add_str(lj, d->extra[i].key, d->extra[i].value);
    }
    autofree char *ltext = wd_json_print(lj);
    autofree char *el = wd_http_escape(ltext);
    autofree char *et = wd_http_escape(tag);
    autofree char *path = xasprintf("/build?t=%s&rm=1&forcerm=1&labels=%s", et, el);
    struct progress_sink s = {0};
    int rc = post_tar(d, path, tar, len, &s, what, err);
    if (rc == 0 && id) {
        if (s.id == NULL)
            rc = wd_err(err, EPROTO, "%s: the build reported no image ID", what);
        else
            *id = WD_STEAL(s.id);
    }
    progress_free(&s);
    return rc;
}

/* ---- cleanup ---- */

static bool has_labels(const struct wd_container_summary *o, const char *const *labels, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(labels[i], '=');
        size_t kl = eq ? (size_t)(eq - labels[i]) : strlen(labels[i]);
        bool found = false;
        for (size_t j = 0; j < o->nlabels && !found; j++)
            found = strlen(o->labels[j].key) == kl &&
                    strncmp(o->labels[j].key, labels[i], kl) == 0 &&
                    (eq == NULL || strcmp(o->labels[j].value, eq + 1) == 0);
        if (!found)
            return false;
    }
    return true;
}

/* IDs of the objects at @base carrying all @labels. The engine filters by the first label only
 * and we check the rest here: Podman 4.3's image list answers [] to two label filters. */
static int list_ids(struct wd_docker *d, const char *what, const char *base,
                    const char *const *labels, size_t n, char ***ids, size_t *nids,
                    struct wd_error **err)
{
    autofree char *f = label_query(labels, 1);
    autofree char *path = xasprintf("%s%sfilters=%s", base, strchr(base, '?') ? "&" : "?", f);
    autojson cJSON *reply = NULL;
    int rc = call_json(d, "GET", path, NULL, &reply, CALL_TIMEOUT_MS, what, err);
    if (rc < 0)
        return rc;
    struct wd_container_summary *objs = NULL;
    size_t nobj = 0;
    if (wd_docker_parse_container_list(reply, &objs, &nobj, err) < 0)
        return wd_err_wrap(err, "%s", what);
    char **v = xcalloc(nobj + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < nobj; i++)
        if (has_labels(&objs[i], labels, n))
            v[k++] = xstrdup(objs[i].id);
    wd_container_summaries_free(objs, nobj);
    *ids = v;
    *nids = k;
    return 0;
}

int wd_docker_cleanup(struct wd_docker *d, const char *const *labels, size_t nlabels,
                      struct wd_cleanup_stats *st, struct wd_error **err)
{
    struct wd_cleanup_stats s = {0};
    if (nlabels == 0)
        return wd_err(err, EINVAL, "cleanup: refusing to run without a label filter");
    char **ids = NULL;
    size_t n = 0;
    int rc = list_ids(d, "cleanup: list containers", "/containers/json?all=1", labels, nlabels,
                      &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = wd_docker_container_remove(d, ids[i], true, err);
        if (rc == -ENOENT) {
            wd_err_free(err);
            rc = 0;
        } else if (rc == 0) {
            s.containers++;
        }
    }
    wd_strv_free(ids, n);
    ids = NULL, n = 0;
    if (rc == 0)
        rc = list_ids(d, "cleanup: list networks", "/networks", labels, nlabels, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = wd_docker_network_remove(d, ids[i], err);
        if (rc == -ENOENT) {
            wd_err_free(err);
            rc = 0;
        } else if (rc == 0) {
            s.networks++;
        }
    }
    wd_strv_free(ids, n);
    ids = NULL, n = 0;
    if (rc == 0)
        rc = list_ids(d, "cleanup: list images", "/images/json", labels, nlabels, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = wd_docker_image_remove(d, ids[i], false, err);
        if (rc == -ENOENT) {
            wd_err_free(err);
            rc = 0;
        } else if (rc == -EEXIST || rc == -EBUSY) {
            wd_debug("cleanup: keeping image %s: %s", ids[i], (*err)->msg);
            wd_err_free(err); /* still used by someone else's container: not ours to force */
            s.images_kept++;
            rc = 0;
        } else if (rc == 0) {
            s.images++;
        }
    }
    wd_strv_free(ids, n);
    if (st)
        *st = s;
    return rc;
}
