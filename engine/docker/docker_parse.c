/* engine/docker/docker_parse.c - pure parts of the engine client: builders, decoders, framing. */
#include "engine/docker/docker_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "engine/docker/json.h"

/* ---- small helpers ---- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void wd_labels_free(struct wd_label *l, size_t n)
{
    for (size_t i = 0; l && i < n; i++) {
        free(l[i].key);
        free(l[i].value);
    }
    free(l);
}

void wd_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* Copy a JSON object of strings into an owned label array (non-strings are skipped). */
static void labels_from_json(const cJSON *obj, struct wd_label **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!cJSON_IsObject(obj))
        return;
    size_t cnt = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) if (cJSON_IsString(it) && it->string) cnt++;
    if (cnt == 0)
        return;
    struct wd_label *l = xcalloc(cnt, sizeof *l);
    size_t i = 0;
    cJSON_ArrayForEach(it, obj)
    {
        if (!cJSON_IsString(it) || it->string == NULL || i == cnt)
            continue;
        l[i].key = xstrdup(it->string);
        l[i].value = xstrdup(it->valuestring);
        i++;
    }
    *out = l;
    *n = i;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == 0)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* ---- host URI, versions, labels env ---- */

int wd_docker_parse_host(const char *uri, const char *source, char **path, struct wd_error **err)
{
    const char *p = NULL;
    if (strncmp(uri, "unix://", 7) == 0)
        p = uri + 7;
    else if (uri[0] == '/')
        p = uri;
    if (p == NULL) {
        const char *colon = strstr(uri, "://");
        return wd_err(err, EINVAL,
                      "%s=%s: only unix:// engine sockets are supported (not %.*s); use e.g. "
                      "unix:///var/run/docker.sock",
                      source, uri, colon ? (int)(colon - uri + 3) : (int)strlen(uri), uri);
    }
    if (p[0] != '/')
        return wd_err(err, EINVAL, "%s=%s: the socket path must be absolute (unix:///path)", source,
                      uri);
    *path = xstrdup(p);
    return 0;
}

int wd_docker_parse_api_version(const char *s, unsigned *major, unsigned *minor)
{
    if (s == NULL)
        return -EINVAL;
    const char *dot = strchr(s, '.');
    if (dot == NULL || dot == s || dot - s > 3)
        return -EINVAL;
    char a[4];
    memcpy(a, s, (size_t)(dot - s));
    a[dot - s] = 0;
    uint64_t ma, mi;
    if (!parse_u64(a, 999, &ma) || !parse_u64(dot + 1, 999, &mi))
        return -EINVAL;
    *major = (unsigned)ma;
    *minor = (unsigned)mi;
    return 0;
}

static unsigned api_num(unsigned ma, unsigned mi)
{
    return ma * 1000 + mi;
}

int wd_docker_negotiate(const char *server_max, const char *server_min, char out[16], bool *warn,
                        struct wd_error **err)
{
    unsigned sma, smi, tma, tmi, lma, lmi, nma = 0, nmi = 0;
    *warn = false;
    if (wd_docker_parse_api_version(server_max, &sma, &smi) < 0)
        return wd_err(err, EPROTO, "engine reports an invalid API version '%s'",
                      server_max ? server_max : "");
    (void)wd_docker_parse_api_version(WD_DOCKER_API_TESTED, &tma, &tmi);
    (void)wd_docker_parse_api_version(WD_DOCKER_API_MIN, &lma, &lmi);
    if (api_num(sma, smi) < api_num(lma, lmi))
        return wd_err(err, ENOTSUP,
                      "engine API %s is too old: weaver-docker needs API %s or newer (Docker "
                      ">= 20.10, Podman >= 4.2); upgrade the engine",
                      server_max, WD_DOCKER_API_MIN);
    if (api_num(sma, smi) < api_num(tma, tmi))
        nma = sma, nmi = smi;
    else
        nma = tma, nmi = tmi;
    if (server_min && wd_docker_parse_api_version(server_min, &lma, &lmi) == 0 &&
        api_num(lma, lmi) > api_num(nma, nmi)) {
        /* e.g. Docker 29.0-29.2 refuse anything below 1.44 */
        nma = lma, nmi = lmi;
        *warn = true;
    }
    snprintf(out, 16, "%u.%u", nma, nmi);
    return 0;
}

static bool label_key_ok(const char *k, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '/'))
            return false;
    }
    return true;
}

int wd_docker_labels_parse(const char *env, struct wd_label **out, size_t *n, struct wd_error **err)
{
    struct wd_label *l = NULL;
    size_t cnt = 0;
    const char *p = env ? env : "";
    while (*p) {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a < b) {
            const char *eq = memchr(a, '=', (size_t)(b - a));
            if (eq == NULL || !label_key_ok(a, (size_t)(eq - a))) {
                wd_labels_free(l, cnt);
                return wd_err(err, EINVAL,
                              "%s: bad item '%.*s' (want key=value[,key=value...], keys of "
                              "letters, digits, '.', '-', '_', '/')",
                              WD_LABELS_ENV, (int)(b - a), a);
            }
            l = xrealloc(l, (cnt + 1) * sizeof *l);
            l[cnt].key = xstrndup(a, (size_t)(eq - a));
            l[cnt].value = xstrndup(eq + 1, (size_t)(b - eq - 1));
            cnt++;
        }
        p = *end ? end + 1 : end;
    }
    *out = l;
    *n = cnt;
    return 0;
}

char *wd_docker_error_message(const void *body, size_t len)
{
    const char *msg = NULL;
    autojson cJSON *doc = len ? cJSON_ParseWithLength(body, len) : NULL;
    if (cJSON_IsObject(doc))
        msg = wd_json_str(doc, "message");
    const char *s = msg ? msg : (const char *)body;
    size_t n = msg ? strlen(msg) : len;
    if (s == NULL)
        n = 0;
    if (n > 1024)
        n = 1024;
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            break;
        out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : (char)c;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = 0;
    return out;
}

int wd_docker_status_errno(long status, const char *message)
{
    const char *m = message ? message : "";
    if (status >= 200 && status < 300)
        return 0;
    switch (status) {
    case 304:
        return 0;
    case 400:
        return EINVAL;
    case 401:
    case 403:
        return EACCES;
    case 404:
        return ENOENT;
    case 409:
        return EEXIST;
    default:
        break;
    }
    /* Podman (and Docker's start failures) answer 500: classify by text (§2.4, §5.1) */
    if (strstr(m, "address already in use") || strstr(m, "port is already allocated") ||
        strstr(m, "cannot listen on the"))
        return EADDRINUSE;
    if (strstr(m, "invalid reference format"))
        return EINVAL;
    if (strcasestr(m, "already in use") || strcasestr(m, "already exists"))
        return EEXIST;
    if (strcasestr(m, "no such ") || strcasestr(m, "not found") || strstr(m, "not known"))
        return ENOENT;
    if (strstr(m, "is being used") || strstr(m, "state improper") ||
        strstr(m, "active endpoints") || strcasestr(m, "in use"))
        return EBUSY;
    if (status == 503)
        return EAGAIN;
    return EIO;
}

/* ---- request builders ---- */

static void add_labels(cJSON *obj, const struct wd_kv *l, size_t n, const struct wd_label *extra,
                       size_t nextra)
{
    for (size_t i = 0; i < n; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, l[i].key);
        wd_json_add_str(obj, l[i].key, l[i].value);
    }
    for (size_t i = 0; i < nextra; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, extra[i].key);
        wd_json_add_str(obj, extra[i].key, extra[i].value);
    }
}

static const struct wd_ulimit default_ulimits[] = {
    {"nofile", 4096, 4096},
    {"nproc", 4096, 4096},
};

struct cJSON *wd_docker_container_json(const struct wd_container_spec *s,
                                       const struct wd_label *extra, size_t nextra)
{
    cJSON *c = wd_json_new_object();
    wd_json_add_str(c, "Image", s->image);
    if (s->nentrypoint)
        wd_json_arr_add_strv(wd_json_add_array(c, "Entrypoint"), s->entrypoint, s->nentrypoint);
    if (s->ncmd)
        wd_json_arr_add_strv(wd_json_add_array(c, "Cmd"), s->cmd, s->ncmd);
    if (s->nenv)
        wd_json_arr_add_strv(wd_json_add_array(c, "Env"), s->env, s->nenv);
    add_labels(wd_json_add_object(c, "Labels"), s->labels, s->nlabels, extra, nextra);
    if (s->user)
        wd_json_add_str(c, "User", s->user);
    if (s->hostname)
        wd_json_add_str(c, "Hostname", s->hostname);
    if (s->workdir)
        wd_json_add_str(c, "WorkingDir", s->workdir);
    wd_json_add_bool(c, "Tty", s->tty);
    wd_json_add_bool(c, "AttachStdin", false);
    wd_json_add_bool(c, "OpenStdin", false);
    if (s->stop_signal)
        wd_json_add_str(c, "StopSignal", s->stop_signal);
    if (s->stop_timeout_s > 0)
        wd_json_add_i64(c, "StopTimeout", s->stop_timeout_s);
    if (s->nports) {
        cJSON *ex = wd_json_add_object(c, "ExposedPorts");
        for (size_t i = 0; i < s->nports; i++) {
            char key[32];
            snprintf(key, sizeof key, "%u/%s", (unsigned)s->ports[i].container_port,
                     s->ports[i].proto ? s->ports[i].proto : "tcp");
            if (!cJSON_GetObjectItemCaseSensitive(ex, key))
                wd_json_add_object(ex, key);
        }
    }
    if (s->health && s->health->argc) {
        cJSON *h = wd_json_add_object(c, "Healthcheck");
        cJSON *t = wd_json_add_array(h, "Test");
        wd_json_arr_add_str(t, "CMD");
        wd_json_arr_add_strv(t, s->health->argv, s->health->argc);
        if (s->health->interval_ns)
            wd_json_add_i64(h, "Interval", s->health->interval_ns);
        if (s->health->timeout_ns)
            wd_json_add_i64(h, "Timeout", s->health->timeout_ns);
        if (s->health->start_period_ns)
            wd_json_add_i64(h, "StartPeriod", s->health->start_period_ns);
        if (s->health->retries)
            wd_json_add_i64(h, "Retries", s->health->retries);
    }

    cJSON *hc = wd_json_add_object(c, "HostConfig");
    if (s->network)
        wd_json_add_str(hc, "NetworkMode", s->network);
    if (s->nports) {
        cJSON *pb = wd_json_add_object(hc, "PortBindings");
        for (size_t i = 0; i < s->nports; i++) {
            const struct wd_port_binding *p = &s->ports[i];
            char key[32], hp[8] = "";
            snprintf(key, sizeof key, "%u/%s", (unsigned)p->container_port,
                     p->proto ? p->proto : "tcp");
            if (p->host_port)
                snprintf(hp, sizeof hp, "%u", (unsigned)p->host_port);
            cJSON *arr = cJSON_GetObjectItemCaseSensitive(pb, key);
            if (arr == NULL)
                arr = wd_json_add_array(pb, key);
            cJSON *b = wd_json_new_object();
            wd_json_add_str(b, "HostIp", p->host_ip ? p->host_ip : "");
            wd_json_add_str(b, "HostPort", hp);
            cJSON_AddItemToArray(arr, b);
        }
    }
    if (s->restart) {
        cJSON *rp = wd_json_add_object(hc, "RestartPolicy");
        wd_json_add_str(rp, "Name", s->restart);
        if (strcmp(s->restart, "on-failure") == 0 && s->restart_max > 0)
            wd_json_add_i64(rp, "MaximumRetryCount", s->restart_max);
    }
    wd_json_add_bool(hc, "AutoRemove", false);
    if (s->read_only)
        wd_json_add_bool(hc, "ReadonlyRootfs", true);
    if (s->cap_drop_all)
        wd_json_arr_add_str(wd_json_add_array(hc, "CapDrop"), "ALL");
    if (s->no_new_privileges)
        wd_json_arr_add_str(wd_json_add_array(hc, "SecurityOpt"), "no-new-privileges");
    if (s->init)
        wd_json_add_bool(hc, "Init", true);
    if (s->ntmpfs) {
        cJSON *t = wd_json_add_object(hc, "Tmpfs");
        for (size_t i = 0; i < s->ntmpfs; i++)
            wd_json_add_str(t, s->tmpfs[i].path,
                            s->tmpfs[i].options ? s->tmpfs[i].options
                                                : "rw,nosuid,nodev,mode=1777,size=64m");
    }
    if (s->nmounts) {
        cJSON *ma = wd_json_add_array(hc, "Mounts");
        for (size_t i = 0; i < s->nmounts; i++) {
            const struct wd_mount *m = &s->mounts[i];
            cJSON *o = wd_json_new_object();
            wd_json_add_str(o, "Type", m->volume ? "volume" : "bind");
            wd_json_add_str(o, "Source", m->source);
            wd_json_add_str(o, "Target", m->target);
            wd_json_add_bool(o, "ReadOnly", m->read_only);
            cJSON_AddItemToArray(ma, o);
        }
    }
    if (s->nextra_hosts)
        wd_json_arr_add_strv(wd_json_add_array(hc, "ExtraHosts"), s->extra_hosts,
                             s->nextra_hosts);
    if (s->memory_bytes > 0)
        wd_json_add_i64(hc, "Memory", s->memory_bytes);
    if (s->nano_cpus > 0)
        wd_json_add_i64(hc, "NanoCpus", s->nano_cpus);
    if (s->pids_limit > 0)
        wd_json_add_i64(hc, "PidsLimit", s->pids_limit);
    const struct wd_ulimit *ul = s->nulimits ? s->ulimits : default_ulimits;
    size_t nul = s->nulimits ? s->nulimits : WD_ARRAY_LEN(default_ulimits);
    cJSON *ua = wd_json_add_array(hc, "Ulimits");
    for (size_t i = 0; i < nul; i++) {
        cJSON *u = wd_json_new_object();
        wd_json_add_str(u, "Name", ul[i].name);
        wd_json_add_i64(u, "Soft", ul[i].soft);
        wd_json_add_i64(u, "Hard", ul[i].hard);
        cJSON_AddItemToArray(ua, u);
    }

    if (s->network) {
        cJSON *ec =
            wd_json_add_object(wd_json_add_object(c, "NetworkingConfig"), "EndpointsConfig");
        cJSON *ep = wd_json_add_object(ec, s->network);
        if (s->naliases)
            wd_json_arr_add_strv(wd_json_add_array(ep, "Aliases"), s->aliases, s->naliases);
    }
    return c;
}

struct cJSON *wd_docker_volume_json(const char *name, const struct wd_kv *labels, size_t nlabels,
                                    const struct wd_label *extra, size_t nextra)
{
    cJSON *v = wd_json_new_object();
    wd_json_add_str(v, "Name", name);
    wd_json_add_str(v, "Driver", "local");
    add_labels(wd_json_add_object(v, "Labels"), labels, nlabels, extra, nextra);
    return v;
}

struct cJSON *wd_docker_network_json(const struct wd_network_spec *s, const struct wd_label *extra,
                                     size_t nextra)
{
    cJSON *n = wd_json_new_object();
    wd_json_add_str(n, "Name", s->name);
    wd_json_add_str(n, "Driver", "bridge");
    wd_json_add_bool(n, "Internal", s->internal);
    wd_json_add_bool(n, "Attachable", false);
    /* below API 1.44 Docker creates a duplicate without it (docker-engine.md §4) */
    wd_json_add_bool(n, "CheckDuplicate", true);
    add_labels(wd_json_add_object(n, "Labels"), s->labels, s->nlabels, extra, nextra);
    return n;
}

char *wd_docker_filters_json(const char *const *labels, size_t nlabels, const char *type,
                             const char *const *events, size_t nevents)
{
    autojson cJSON *f = wd_json_new_object();
    if (nlabels)
        wd_json_arr_add_strv(wd_json_add_array(f, "label"), labels, nlabels);
    if (type)
        wd_json_arr_add_str(wd_json_add_array(f, "type"), type);
    if (nevents)
        wd_json_arr_add_strv(wd_json_add_array(f, "event"), events, nevents);
    return wd_json_print(f);
}

/* ---- reply decoders ---- */

void wd_engine_version_free(struct wd_engine_version *v)
{
    if (v == NULL)
        return;
    free(v->version);
    free(v->api_version);
    free(v->min_api_version);
    free(v->os);
    free(v->arch);
    memset(v, 0, sizeof *v);
}

int wd_docker_parse_version(const struct cJSON *doc, struct wd_engine_version *out,
                            struct wd_error **err)
{
    if (!cJSON_IsObject(doc))
        return wd_err(err, EPROTO, "version reply: not an object");
    const char *api = wd_json_str(doc, "ApiVersion");
    if (api == NULL)
        return wd_err(err, EPROTO, "version reply: no ApiVersion");
    struct wd_engine_version v = {0};
    v.api_version = xstrdup(api);
    v.min_api_version = dup_or_null(wd_json_str(doc, "MinAPIVersion"));
    v.version = xstrdup(wd_json_str(doc, "Version") ? wd_json_str(doc, "Version") : "");
    v.os = dup_or_null(wd_json_str(doc, "Os"));
    v.arch = dup_or_null(wd_json_str(doc, "Arch"));
    const cJSON *comp;
    cJSON_ArrayForEach(comp, wd_json_arr(doc, "Components"))
    {
        const char *name = wd_json_str(comp, "Name");
        if (name && strcasestr(name, "podman"))
            v.podman = true;
    }
    *out = v;
    return 0;
}

void wd_container_info_free(struct wd_container_info *c)
{
    if (c == NULL)
        return;
    free(c->id);
    free(c->name);
    free(c->image);
    free(c->status);
    free(c->error);
    free(c->health);
    free(c->ip);
    free(c->ports);
    wd_labels_free(c->labels, c->nlabels);
    memset(c, 0, sizeof *c);
}

/* "7000/tcp" -> port, proto */
static bool port_key(const char *k, uint16_t *port, char proto[8])
{
    const char *slash = strchr(k, '/');
    char num[8];
    size_t nl = slash ? (size_t)(slash - k) : strlen(k);
    if (nl == 0 || nl >= sizeof num)
        return false;
    memcpy(num, k, nl);
    num[nl] = 0;
    uint64_t v;
    if (!parse_u64(num, 65535, &v))
        return false;
    *port = (uint16_t)v;
    snprintf(proto, 8, "%s", slash && slash[1] ? slash + 1 : "tcp");
    return true;
}

static void add_bindings(struct wd_container_info *c, const cJSON *ports)
{
    const cJSON *pk;
    cJSON_ArrayForEach(pk, ports)
    {
        uint16_t cport;
        char proto[8];
        if (pk->string == NULL || !port_key(pk->string, &cport, proto) || !cJSON_IsArray(pk))
            continue;
        const cJSON *b;
        cJSON_ArrayForEach(b, pk)
        {
            uint64_t hp = 0;
            const char *hps = wd_json_str(b, "HostPort");
            if (hps == NULL || !parse_u64(hps, 65535, &hp) || hp == 0)
                continue;
            if (c->nports >= 1024)
                return;
            c->ports = xrealloc(c->ports, (c->nports + 1) * sizeof *c->ports);
            struct wd_port *p = &c->ports[c->nports++];
            memset(p, 0, sizeof *p);
            p->container_port = cport;
            memcpy(p->proto, proto, sizeof p->proto);
            snprintf(p->host_ip, sizeof p->host_ip, "%s",
                     wd_json_str(b, "HostIp") ? wd_json_str(b, "HostIp") : "");
            p->host_port = (uint16_t)hp;
        }
    }
}

int wd_docker_parse_container(const struct cJSON *doc, const char *network,
                              struct wd_container_info *out, struct wd_error **err)
{
    if (!cJSON_IsObject(doc))
        return wd_err(err, EPROTO, "container inspect reply: not an object");
    const char *id = wd_json_str(doc, "Id");
    const cJSON *state = wd_json_obj(doc, "State");
    if (id == NULL || state == NULL)
        return wd_err(err, EPROTO, "container inspect reply: no Id or State");
    struct wd_container_info c = {0};
    c.id = xstrdup(id);
    const char *name = wd_json_str(doc, "Name");
    c.name = xstrdup(name ? (name[0] == '/' ? name + 1 : name) : "");
    const cJSON *cfg = wd_json_obj(doc, "Config");
    c.image = xstrdup(wd_json_str(cfg, "Image") ? wd_json_str(cfg, "Image") : "");
    c.tty = wd_json_bool(cfg, "Tty", false);
    labels_from_json(wd_json_obj(cfg, "Labels"), &c.labels, &c.nlabels);
    c.status = xstrdup(wd_json_str(state, "Status") ? wd_json_str(state, "Status") : "");
    c.running = wd_json_bool(state, "Running", false);
    c.oom_killed = wd_json_bool(state, "OOMKilled", false);
    c.exit_code = wd_json_i64_or(state, "ExitCode", -1);
    c.pid = wd_json_i64_or(state, "Pid", 0);
    c.restart_count = wd_json_i64_or(doc, "RestartCount", 0);
    const char *e = wd_json_str(state, "Error");
    c.error = e && *e ? xstrdup(e) : NULL;
    const char *h = wd_json_str(wd_json_obj(state, "Health"), "Status");
    c.health = xstrdup(h ? h : "");

    const cJSON *ns = wd_json_obj(doc, "NetworkSettings");
    const cJSON *nets = wd_json_obj(ns, "Networks");
    const cJSON *net = network ? wd_json_obj(nets, network) : NULL;
    if (net == NULL && network == NULL) {
        const cJSON *it;
        cJSON_ArrayForEach(it, nets)
        {
            const char *ip = wd_json_str(it, "IPAddress");
            if (ip && *ip) {
                net = it;
                break;
            }
        }
    }
    const char *ip = wd_json_str(net, "IPAddress");
    c.ip = ip && *ip ? xstrdup(ip) : NULL;

    add_bindings(&c, wd_json_obj(ns, "Ports"));
    if (c.nports == 0) /* Podman knows random ports at create: HostConfig.PortBindings */
        add_bindings(&c, wd_json_obj(wd_json_obj(doc, "HostConfig"), "PortBindings"));
    *out = c;
    return 0;
}

int wd_container_info_host_port(const struct wd_container_info *c, uint16_t container_port,
                                const char *proto, uint16_t *host_port)
{
    for (size_t i = 0; i < c->nports; i++)
        if (c->ports[i].container_port == container_port &&
            strcmp(c->ports[i].proto, proto ? proto : "tcp") == 0 && c->ports[i].host_port) {
            *host_port = c->ports[i].host_port;
            return 0;
        }
    return -ENOENT;
}

void wd_container_summaries_free(struct wd_container_summary *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].id);
        free(s[i].name);
        free(s[i].image);
        free(s[i].state);
        free(s[i].status);
        wd_labels_free(s[i].labels, s[i].nlabels);
    }
    free(s);
}

int wd_docker_parse_container_list(const struct cJSON *doc, struct wd_container_summary **out,
                                   size_t *n, struct wd_error **err)
{
    if (!cJSON_IsArray(doc))
        return wd_err(err, EPROTO, "container list reply: not an array");
    int cnt = cJSON_GetArraySize(doc);
    struct wd_container_summary *s = xcalloc((size_t)cnt, sizeof *s);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        const char *id = wd_json_str(it, "Id");
        if (id == NULL || i >= (size_t)cnt)
            continue;
        s[i].id = xstrdup(id);
        const cJSON *names = wd_json_arr(it, "Names");
        const cJSON *n0 = names ? cJSON_GetArrayItem(names, 0) : NULL;
        const char *nm = cJSON_IsString(n0) ? n0->valuestring : "";
        s[i].name = xstrdup(nm[0] == '/' ? nm + 1 : nm);
        s[i].image = xstrdup(wd_json_str(it, "Image") ? wd_json_str(it, "Image") : "");
        s[i].state = xstrdup(wd_json_str(it, "State") ? wd_json_str(it, "State") : "");
        s[i].status = xstrdup(wd_json_str(it, "Status") ? wd_json_str(it, "Status") : "");
        labels_from_json(wd_json_obj(it, "Labels"), &s[i].labels, &s[i].nlabels);
        i++;
    }
    *out = s;
    *n = i;
    return 0;
}

void wd_network_info_free(struct wd_network_info *n)
{
    if (n == NULL)
        return;
    free(n->id);
    free(n->name);
    free(n->driver);
    free(n->subnet);
    free(n->gateway);
    wd_labels_free(n->labels, n->nlabels);
    memset(n, 0, sizeof *n);
}

int wd_docker_parse_network(const struct cJSON *doc, struct wd_network_info *out,
                            struct wd_error **err)
{
    const char *id = wd_json_str(doc, "Id"), *name = wd_json_str(doc, "Name");
    if (id == NULL || name == NULL)
        return wd_err(err, EPROTO, "network inspect reply: no Id or Name");
    struct wd_network_info n = {0};
    n.id = xstrdup(id);
    n.name = xstrdup(name);
    n.driver = xstrdup(wd_json_str(doc, "Driver") ? wd_json_str(doc, "Driver") : "");
    n.internal = wd_json_bool(doc, "Internal", false);
    const cJSON *cfg = wd_json_arr(wd_json_obj(doc, "IPAM"), "Config");
    const cJSON *c0 = cfg ? cJSON_GetArrayItem(cfg, 0) : NULL;
    n.subnet = dup_or_null(wd_json_str(c0, "Subnet"));
    n.gateway = dup_or_null(wd_json_str(c0, "Gateway"));
    labels_from_json(wd_json_obj(doc, "Labels"), &n.labels, &n.nlabels);
    *out = n;
    return 0;
}

void wd_image_info_free(struct wd_image_info *i)
{
    if (i == NULL)
        return;
    free(i->id);
    wd_labels_free(i->labels, i->nlabels);
    memset(i, 0, sizeof *i);
}

int wd_docker_parse_image(const struct cJSON *doc, struct wd_image_info *out, struct wd_error **err)
{
    const char *id = wd_json_str(doc, "Id");
    if (id == NULL)
        return wd_err(err, EPROTO, "image inspect reply: no Id");
    struct wd_image_info i = {0};
    i.id = xstrdup(id);
    i.size_bytes = wd_json_i64_or(doc, "Size", 0);
    labels_from_json(wd_json_obj(wd_json_obj(doc, "Config"), "Labels"), &i.labels, &i.nlabels);
    *out = i;
    return 0;
}

int wd_docker_parse_id_list(const struct cJSON *doc, char ***ids, size_t *n, struct wd_error **err)
{
    if (!cJSON_IsArray(doc))
        return wd_err(err, EPROTO, "list reply: not an array");
    int cnt = cJSON_GetArraySize(doc);
    char **v = xcalloc((size_t)cnt + 1, sizeof *v);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        const char *id = wd_json_str(it, "Id");
        if (id && i < (size_t)cnt)
            v[i++] = xstrdup(id);
    }
    *ids = v;
    *n = i;
    return 0;
}

int wd_docker_parse_wait(const struct cJSON *doc, int64_t *code, char **errmsg,
                         struct wd_error **err)
{
    int64_t c;
    if (!cJSON_IsObject(doc) || wd_json_get_i64(doc, "StatusCode", &c, err) < 0) {
        if (*err == NULL)
            return wd_err(err, EPROTO, "wait reply: not an object");
        return wd_err_wrap(err, "wait reply");
    }
    const char *m = wd_json_str(wd_json_obj(doc, "Error"), "Message");
    *errmsg = m && *m ? xstrdup(m) : NULL;
    *code = c;
    return 0;
}

static enum wd_event_action event_action(const char *a)
{
    static const struct {
        const char *name;
        enum wd_event_action act;
    } map[] = {
        {"create", WD_EV_CREATE}, {"start", WD_EV_START},     {"die", WD_EV_DIE},
        {"died", WD_EV_DIE},      {"oom", WD_EV_OOM},         {"kill", WD_EV_KILL},
        {"stop", WD_EV_STOP},     {"destroy", WD_EV_DESTROY}, {"remove", WD_EV_DESTROY},
    };
    if (strncmp(a, "health_status", 13) == 0)
        return WD_EV_HEALTH;
    for (size_t i = 0; i < WD_ARRAY_LEN(map); i++)
        if (strcmp(a, map[i].name) == 0)
            return map[i].act;
    return WD_EV_OTHER;
}

int wd_docker_parse_event(const struct cJSON *doc, struct wd_docker_event *out,
                          struct wd_label **attrs, struct wd_error **err)
{
    const char *action = wd_json_str(doc, "Action");
    if (action == NULL)
        action = wd_json_str(doc, "status"); /* legacy field */
    if (action == NULL)
        return wd_err(err, EPROTO, "event: no Action");
    const cJSON *actor = wd_json_obj(doc, "Actor");
    const cJSON *at = wd_json_obj(actor, "Attributes");
    struct wd_docker_event ev = {0};
    ev.action_text = action;
    ev.action = event_action(action);
    ev.type = wd_json_str(doc, "Type") ? wd_json_str(doc, "Type") : "";
    ev.id = wd_json_str(actor, "ID") ? wd_json_str(actor, "ID") : "";
    ev.name = wd_json_str(at, "name") ? wd_json_str(at, "name") : "";
    ev.exit_code = -1;
    if (ev.action == WD_EV_DIE) {
        const char *ec = wd_json_str(at, "exitCode");
        if (ec == NULL)
            ec = wd_json_str(at, "containerExitCode");
        uint64_t v;
        if (ec && parse_u64(ec, 255 + 128, &v))
            ev.exit_code = (int64_t)v;
    }
    if (ev.action == WD_EV_HEALTH) {
        const char *colon = strchr(action, ':');
        if (colon) {
            ev.health = colon + 1;
            while (*ev.health == ' ')
                ev.health++;
        } else {
            ev.health = wd_json_str(doc, "health_status"); /* Podman */
        }
    }
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(doc, "timeNano");
    if (cJSON_IsNumber(tn) && tn->valuedouble >= 0 && tn->valuedouble < 9.2e18)
        ev.time_ns = (int64_t)tn->valuedouble;
    else {
        int64_t t = wd_json_i64_or(doc, "time", 0);
        ev.time_ns = t > 0 && t < 9000000000 ? t * 1000000000 : 0;
    }
    size_t cnt = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, at) if (cJSON_IsString(it) && it->string) cnt++;
    struct wd_label *l = cnt ? xcalloc(cnt, sizeof *l) : NULL;
    size_t i = 0;
    cJSON_ArrayForEach(it, at)
    {
        if (cJSON_IsString(it) && it->string && i < cnt) {
            l[i].key = it->string;
            l[i].value = it->valuestring;
            i++;
        }
    }
    ev.attrs = l;
    ev.nattrs = i;
    *attrs = l;
    *out = ev;
    return 0;
}

void wd_docker_parse_progress(const struct cJSON *doc, struct wd_progress *out)
{
    memset(out, 0, sizeof *out);
    const char *e = wd_json_str(wd_json_obj(doc, "errorDetail"), "message");
    if (e == NULL)
        e = wd_json_str(doc, "error");
    out->error = e;
    out->aux_id = wd_json_str(wd_json_obj(doc, "aux"), "ID");
    out->stream = wd_json_str(doc, "stream");
}

/* ---- stream framing ---- */

int wd_docker_frame_header(const uint8_t h[8], int *stream, size_t *len, struct wd_error **err)
{
    uint32_t n = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
    if (h[0] > 3 || (h[1] | h[2] | h[3]) != 0)
        return wd_err(err, EPROTO,
                      "stream frame: bad header %02x %02x %02x %02x (is the container a TTY?)",
                      h[0], h[1], h[2], h[3]);
    if (n > WD_MAX_STREAM_FRAME)
        return wd_err(err, EMSGSIZE, "stream frame: %" PRIu32 " bytes exceeds limit %u", n,
                      (unsigned)WD_MAX_STREAM_FRAME);
    *stream = h[0];
    *len = n;
    return 0;
}

static int deliver(int stream, const uint8_t *p, size_t n, wd_docker_output_fn cb, void *arg,
                   struct wd_error **err)
{
    if (stream == 3)
        return wd_err(err, EIO, "engine stream error: %.*s", (int)(n > 1024 ? 1024 : n),
                      (const char *)p);
    if (n == 0)
        return 0;
    int rc = cb(arg, stream == 0 ? 1 : stream, p, n);
    if (rc < 0)
        return wd_err(err, -rc, "output consumer stopped");
    return 0;
}

int wd_demux_feed(struct wd_demux *m, const uint8_t *p, size_t n, wd_docker_output_fn cb, void *arg,
                  struct wd_error **err)
{
    if (m->tty)
        return n ? deliver(1, p, n, cb, arg, err) : 0;
    m->pending.max = 8 + WD_MAX_STREAM_FRAME;
    while (n > 0) {
        int stream;
        size_t len;
        if (m->pending.len == 0) {
            while (n >= 8) { /* fast path: frames straight from the input */
                if (wd_docker_frame_header(p, &stream, &len, err) < 0)
                    return -(*err)->errnum;
                if (n - 8 < len)
                    break;
                if (deliver(stream, p + 8, len, cb, arg, err) < 0)
                    return -(*err)->errnum;
                p += 8 + len;
                n -= 8 + len;
            }
            if (n == 0)
                return 0;
            if (n >= 8) /* a valid header whose payload is incomplete */
                (void)wd_buf_append(&m->pending, p, 8), p += 8, n -= 8;
            else {
                (void)wd_buf_append(&m->pending, p, n);
                return 0;
            }
            continue;
        }
        if (m->pending.len < 8) {
            size_t take = 8 - m->pending.len < n ? 8 - m->pending.len : n;
            (void)wd_buf_append(&m->pending, p, take);
            p += take;
            n -= take;
            if (m->pending.len < 8)
                return 0;
        }
        if (wd_docker_frame_header(m->pending.data, &stream, &len, err) < 0)
            return -(*err)->errnum;
        size_t have = m->pending.len - 8;
        size_t take = len - have < n ? len - have : n;
        (void)wd_buf_append(&m->pending, p, take); /* within max: len <= WD_MAX_STREAM_FRAME */
        p += take;
        n -= take;
        if (m->pending.len - 8 == len) {
            int rc = deliver(stream, m->pending.data + 8, len, cb, arg, err);
            m->pending.len = 0;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int wd_demux_end(struct wd_demux *m, struct wd_error **err)
{
    if (!m->tty && m->pending.len)
        return wd_err(err, EPROTO, "stream ended inside a frame (%zu bytes left)", m->pending.len);
    return 0;
}

void wd_demux_free(struct wd_demux *m)
{
    wd_buf_free(&m->pending);
}

static int line_out(const char *s, size_t n, wd_line_fn cb, void *arg, struct wd_error **err)
{
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    if (n == 0)
        return 0;
    int rc = cb(arg, s, n);
    if (rc < 0 && *err == NULL)
        return wd_err(err, -rc, "stream consumer stopped");
    return rc < 0 ? rc : 0;
}

int wd_lines_feed(struct wd_lines *l, const uint8_t *p, size_t n, wd_line_fn cb, void *arg,
                  struct wd_error **err)
{
    l->pending.max = WD_MAX_JSON_LINE;
    while (n > 0) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t part = nl ? (size_t)(nl - p) + 1 : n;
        if (l->pending.len == 0 && nl) {
            int rc = line_out((const char *)p, part, cb, arg, err);
            if (rc < 0)
                return rc;
        } else {
            if (wd_buf_append(&l->pending, p, part) < 0)
                return wd_err(err, EMSGSIZE, "stream line exceeds %u bytes",
                              (unsigned)WD_MAX_JSON_LINE);
            if (nl) {
                int rc = line_out((const char *)l->pending.data, l->pending.len, cb, arg, err);
                l->pending.len = 0;
                if (rc < 0)
                    return rc;
            }
        }
        p += part;
        n -= part;
    }
    return 0;
}

int wd_lines_end(struct wd_lines *l, wd_line_fn cb, void *arg, struct wd_error **err)
{
    if (l->pending.len == 0)
        return 0;
    int rc = line_out((const char *)l->pending.data, l->pending.len, cb, arg, err);
    l->pending.len = 0;
    return rc;
}

void wd_lines_free(struct wd_lines *l)
{
    wd_buf_free(&l->pending);
}
