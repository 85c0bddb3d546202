/* compose/compose.c - see compose.h. Every value goes through libyaml's emitter, which does the
 * quoting; we only choose the style: plain for words YAML cannot misread, double-quoted for
 * anything that could become a number, bool or null ("3.8", "10s", "on"), literal for the
 * multi-line config. */
#include "compose/compose.h"
#include "engine/deploy/rt_docker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

struct em {
    yaml_emitter_t e;
    struct wd_buf *out;
    bool failed;
};

static int write_cb(void *data, unsigned char *buf, size_t size)
{
    struct em *m = data;
    return wd_buf_append(m->out, buf, size) == 0;
}

static void emit(struct em *m, yaml_event_t *ev)
{
    if (m->failed) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&m->e, ev)) /* consumes ev either way */
        m->failed = true;
}

/* YAML 1.1 (what docker-compose's PyYAML reads) turns these plain words into non-strings. */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {"y",     "Y",     "yes",  "Yes",  "YES",  "n",    "N",
                                        "no",    "No",    "NO",   "true", "True", "TRUE", "false",
                                        "False", "FALSE", "on",   "On",   "ON",   "off",  "Off",
                                        "OFF",   "null",  "Null", "NULL", "~",    ""};
    for (size_t i = 0; i < WD_ARRAY_LEN(words); i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '/' ||
          s[0] == '_'))
        return true; /* digits, signs, dots, YAML indicators */
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '/' || c == '-'))
            return true;
    }
    return false;
}

static void scalar_style(struct em *m, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)strlen(s), 1, 1,
                                      style)) {
        m->failed = true;
        return;
    }
    emit(m, &ev);
}

static void str(struct em *m, const char *s)
{
    yaml_scalar_style_t st = YAML_PLAIN_SCALAR_STYLE;
    if (strchr(s, '\n'))
        st = YAML_LITERAL_SCALAR_STYLE; /* libyaml falls back to quotes where it must */
    else if (needs_quotes(s))
        st = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    scalar_style(m, s, st);
}

static void num(struct em *m, long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    scalar_style(m, b, YAML_PLAIN_SCALAR_STYLE);
}

static void boolean(struct em *m, bool v)
{
    scalar_style(m, v ? "true" : "false", YAML_PLAIN_SCALAR_STYLE);
}

static void map_begin(struct em *m, bool flow)
{
    yaml_event_t ev;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                        flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(m, &ev);
}

static void map_end(struct em *m)
{
    yaml_event_t ev;
    yaml_mapping_end_event_initialize(&ev);
    emit(m, &ev);
}

static void seq_begin(struct em *m, bool flow)
{
    yaml_event_t ev;
    yaml_sequence_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    emit(m, &ev);
}

static void seq_end(struct em *m)
{
    yaml_event_t ev;
    yaml_sequence_end_event_initialize(&ev);
    emit(m, &ev);
}

static void kv(struct em *m, const char *k, const char *v)
{
    str(m, k);
    str(m, v);
}

/* A value always double-quoted: secrets are hex and would otherwise be plain or quoted
 * depending on their first character. */
static void kvq(struct em *m, const char *k, const char *v)
{
    str(m, k);
    scalar_style(m, v, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

char *wd_compose_escape(const char *s)
{
    struct wd_buf b = {0};
    for (const char *p = s; *p; p++)
        wd_buf_append(&b, *p == '$' ? "$$" : p, *p == '$' ? 2 : 1);
    return wd_buf_steal_str(&b);
}

static void labels(struct em *m, const struct wd_compose_spec *s, const char *role,
                   const char *group)
{
    str(m, "labels");
    map_begin(m, false);
    kv(m, WD_LABEL_APP, s->app);
    kv(m, WD_LABEL_ROLE, role);
    if (group)
        kv(m, WD_LABEL_GROUP, group);
    kv(m, WD_LABEL_PREFIX "compose", "1");
    for (size_t i = 0; i < s->nlabels; i++)
        kv(m, s->labels[i].key, s->labels[i].value);
    map_end(m);
}

/* The file's key for the external network NAME: NAME itself, unless that is our own network's. */
static const char *net_key(const char *name, char *buf, size_t len)
{
    if (strcmp(name, WD_COMPOSE_NETWORK) != 0)
        return name;
    snprintf(buf, len, "external-%s", name);
    return buf;
}

/* As up runs its containers: the image user, a read-only rootfs, no capabilities, no new
 * privileges. Every service, the front too. */
static void hardening(struct em *m)
{
    kv(m, "user", "65532:65532");
    str(m, "read_only");
    boolean(m, true);
    str(m, "cap_drop");
    seq_begin(m, true);
    str(m, "ALL");
    seq_end(m);
    str(m, "security_opt"); /* swarm ignores it, with a warning */
    seq_begin(m, true);
    str(m, "no-new-privileges:true");
    seq_end(m);
}

/* A port published on the node itself (Swarm's routing mesh needs IPVS; dnsrr forbids it). */
static void host_mode_port(struct em *m, uint16_t port)
{
    map_begin(m, true);
    str(m, "target");
    num(m, port);
    str(m, "published");
    num(m, port);
    kv(m, "protocol", "tcp");
    kv(m, "mode", "host");
    map_end(m);
}

/* Everything both kinds of service share: image, hardening, tmpfs, network, restart, hosts;
 * the group services also get the [docker] volumes and networks. */
static void common(struct em *m, const struct wd_compose_spec *s, bool weavelet)
{
    kv(m, "image", s->image);
    hardening(m);
    str(m, "ulimits"); /* as up: Podman's own default cannot always be set (compose.h) */
    map_begin(m, true);
    str(m, "nofile");
    num(m, WD_COMPOSE_ULIMIT);
    str(m, "nproc");
    num(m, WD_COMPOSE_ULIMIT);
    map_end(m);
    str(m, "volumes");
    seq_begin(m, false);
    map_begin(m, false);
    kv(m, "type", "tmpfs");
    kv(m, "target", "/tmp");
    str(m, "tmpfs");
    map_begin(m, true);
    str(m, "size");
    num(m, WD_COMPOSE_TMPFS_BYTES);
    map_end(m);
    map_end(m);
    for (size_t i = 0; weavelet && i < s->nvolumes; i++) {
        const struct wd_compose_volume *v = &s->volumes[i];
        map_begin(m, false);
        kv(m, "type", v->bind ? "bind" : "volume");
        autofree char *src = wd_compose_escape(v->source); /* a host path may hold a '$' */
        kv(m, "source", src);
        kv(m, "target", v->target);
        if (v->bind) {
            str(m, "read_only");
            boolean(m, v->read_only);
        } else if (v->read_only) {
            str(m, "read_only");
            boolean(m, true);
        }
        map_end(m);
    }
    seq_end(m);
    str(m, "networks");
    seq_begin(m, true);
    str(m, WD_COMPOSE_NETWORK);
    for (size_t i = 0; weavelet && i < s->nnetworks; i++) {
        char buf[300];
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen = seen || strcmp(s->networks[j], s->networks[i]) == 0;
        if (!seen)
            str(m, net_key(s->networks[i], buf, sizeof buf));
    }
    seq_end(m);
    /* host.docker.internal reaches the host, as under `up` (the manager relays host_ports
     * there); podman refuses host-gateway, and names the host host.containers.internal */
    if (!s->podman || s->nextra_hosts) {
        str(m, "extra_hosts");
        seq_begin(m, false);
        if (!s->podman)
            str(m, "host.docker.internal:host-gateway");
        for (size_t i = 0; i < s->nextra_hosts; i++)
            str(m, s->extra_hosts[i]);
        seq_end(m);
    }
    /* a manager under a Swarm rollover drains until the front has left it (WD_DRAIN_MAX_MS) */
    kv(m, "stop_grace_period", !weavelet && s->front_image ? "75s" : "10s");
    kv(m, "restart", "always"); /* compose; swarm uses deploy.restart_policy */
}

static void healthcheck(struct em *m, const char *const *argv, size_t argc)
{
    str(m, "healthcheck");
    map_begin(m, false);
    str(m, "test");
    seq_begin(m, true);
    str(m, "CMD");
    for (size_t i = 0; i < argc; i++)
        str(m, argv[i]);
    seq_end(m);
    kv(m, "interval", "5s");
    kv(m, "timeout", "3s");
    str(m, "retries");
    num(m, 3);
    kv(m, "start_period", "20s");
    map_end(m);
}

/* A memory limit as compose and stack both read it: a byte count, or K/M/G (binary units, as
 * docker's "256m") when exact. */
static void fmt_memory(int64_t bytes, char *buf, size_t len)
{
    static const struct {
        char unit;
        int shift;
    } units[] = {{'G', 30}, {'M', 20}, {'K', 10}};
    for (size_t i = 0; i < WD_ARRAY_LEN(units); i++)
        if (bytes % (1LL << units[i].shift) == 0) {
            snprintf(buf, len, "%lld%c", (long long)(bytes >> units[i].shift), units[i].unit);
            return;
        }
    snprintf(buf, len, "%lld", (long long)bytes);
}

/* CPUs as a decimal string ("0.5", "2"): the 3.8 schema wants a string. */
static void fmt_cpus(int64_t nano, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%lld.%09lld", (long long)(nano / 1000000000),
                     (long long)(nano % 1000000000));
    if (n <= 0 || (size_t)n >= len)
        return;
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = 0;
    if (n > 0 && buf[n - 1] == '.')
        buf[--n] = 0;
}

static void deploy(struct em *m, int replicas, bool dnsrr, int64_t memory_bytes, int64_t nano_cpus,
                   bool start_first)
{
    str(m, "deploy");
    map_begin(m, false);
    str(m, "replicas");
    num(m, replicas);
    if (dnsrr) /* one DNS answer per replica; compose ignores the key with a warning */
        kv(m, "endpoint_mode", "dnsrr");
    if (start_first) { /* the next version beside this one until it is healthy (= serves) */
        str(m, "update_config");
        map_begin(m, true);
        kv(m, "order", "start-first");
        map_end(m);
    }
    str(m, "restart_policy");
    map_begin(m, true);
    kv(m, "condition", "any");
    map_end(m);
    if (memory_bytes > 0 || nano_cpus > 0) {
        /* docker-compose 1.27+ maps these to mem_limit and cpus; stack to the service's limits */
        char buf[40];
        str(m, "resources");
        map_begin(m, false);
        str(m, "limits");
        map_begin(m, true);
        if (nano_cpus > 0) {
            fmt_cpus(nano_cpus, buf, sizeof buf);
            kvq(m, "cpus", buf);
        }
        if (memory_bytes > 0) {
            fmt_memory(memory_bytes, buf, sizeof buf);
            kvq(m, "memory", buf);
        }
        map_end(m);
        map_end(m);
    }
    map_end(m);
}

/* The environment of a group's containers: "K=V" lists applied in order, a later K replacing
 * an earlier one's value in its place (as the engine takes the last of a repeated name). */
struct envmap {
    char **k, **v;
    size_t n;
};

static void env_put(struct envmap *e, const char *k, size_t klen, const char *v)
{
    for (size_t i = 0; i < e->n; i++)
        if (strlen(e->k[i]) == klen && memcmp(e->k[i], k, klen) == 0) {
            free(e->v[i]);
            e->v[i] = xstrdup(v);
            return;
        }
    e->k = xrealloc(e->k, (e->n + 1) * sizeof *e->k);
    e->v = xrealloc(e->v, (e->n + 1) * sizeof *e->v);
    e->k[e->n] = xstrndup(k, klen);
    e->v[e->n++] = xstrdup(v);
}

static void env_put_list(struct envmap *e, const char *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kvs[i], '=');
        if (eq == NULL || eq == kvs[i])
            continue;
        env_put(e, kvs[i], (size_t)(eq - kvs[i]), eq + 1);
    }
}

static void env_free(struct envmap *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->k[i]);
        free(e->v[i]);
    }
    free(e->k);
    free(e->v);
}

static void manager(struct em *m, const struct wd_compose_spec *s)
{
    char port[8], buf[300];
    snprintf(port, sizeof port, "%u", (unsigned)s->manager_port);
    str(m, WD_COMPOSE_MANAGER);
    map_begin(m, false);
    common(m, s, false);
    str(m, "entrypoint");
    seq_begin(m, true);
    str(m, s->manager_bin);
    str(m, "manage");
    str(m, "--port");
    str(m, port);
    for (size_t i = 0; i < s->nlisteners; i++) {
        snprintf(buf, sizeof buf, "%s=%u", s->listeners[i].name, (unsigned)s->listeners[i].port);
        str(m, "--listener");
        str(m, buf);
    }
    if (s->podman && s->nhost_ports) {
        str(m, "--host-name");
        str(m, WD_COMPOSE_PODMAN_HOST);
    }
    snprintf(buf, sizeof buf, "/app/%s", s->binary_name);
    str(m, buf);
    seq_end(m);
    str(m, "environment");
    map_begin(m, false);
    kv(m, "HOME", "/tmp");
    kvq(m, "WEAVER_COMPOSE_TOKEN", s->token_hex);
    if (s->config_text) {
        autofree char *esc = wd_compose_escape(s->config_text);
        kv(m, "WEAVER_COMPOSE_CONFIG", esc);
    }
    if (s->front_image) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->stamp);
        kvq(m, "WEAVER_COMPOSE_STAMP", buf);
        snprintf(buf, sizeof buf, "%d", WD_COMPOSE_DRAIN_MS);
        kvq(m, "WEAVER_COMPOSE_DRAIN_MS", buf);
    }
    map_end(m);
    if (s->nlisteners && s->front_image == NULL) {
        str(m, "ports");
        seq_begin(m, false);
        for (size_t i = 0; i < s->nlisteners; i++) {
            if (s->listeners[i].host_ip[0] && !s->swarm) {
                /* the short form: 3.x's long one has no host_ip in docker-compose 1.29 */
                const char *ip = s->listeners[i].host_ip;
                bool v6 = strchr(ip, ':') != NULL;
                snprintf(buf, sizeof buf, "%s%s%s:%u:%u/tcp", v6 ? "[" : "", ip, v6 ? "]" : "",
                         (unsigned)s->listeners[i].port, (unsigned)s->listeners[i].port);
                str(m, buf);
                continue;
            }
            host_mode_port(m, s->listeners[i].port);
        }
        seq_end(m);
    }
    const char *hc[] = {s->manager_bin, "manage", "--health", "--port", port};
    if (!s->podman) /* see group() */
        healthcheck(m, hc, WD_ARRAY_LEN(hc));
    labels(m, s, "manager", NULL);
    /* shims reach the task itself, never a swarm VIP (IPVS) */
    deploy(m, 1, s->swarm, 0, 0, s->front_image != NULL);
    map_end(m);
}

/* The front of a Swarm stack (engine/deploy/front.h): nothing in it depends on the app's
 * version or on this file's token, so `docker stack deploy` of the next version's file leaves
 * it running while the manager and groups roll over beneath it. */
static void front(struct em *m, const struct wd_compose_spec *s)
{
    char port[8], buf[300];
    snprintf(port, sizeof port, "%u", (unsigned)s->manager_port);
    str(m, WD_COMPOSE_FRONT);
    map_begin(m, false);
    kv(m, "image", s->front_image);
    hardening(m);
    str(m, "networks");
    seq_begin(m, true);
    str(m, WD_COMPOSE_NETWORK);
    seq_end(m);
    kv(m, "stop_grace_period", "10s");
    str(m, "entrypoint");
    seq_begin(m, true);
    str(m, s->front_bin);
    str(m, "manage");
    str(m, "--front");
    str(m, "--manager");
    str(m, WD_COMPOSE_MANAGER);
    str(m, "--port");
    str(m, port);
    for (size_t i = 0; i < s->nlisteners; i++) {
        snprintf(buf, sizeof buf, "%s=%u", s->listeners[i].name, (unsigned)s->listeners[i].port);
        str(m, "--listener");
        str(m, buf);
    }
    seq_end(m);
    str(m, "ports");
    seq_begin(m, false);
    for (size_t i = 0; i < s->nlisteners; i++)
        host_mode_port(m, s->listeners[i].port);
    seq_end(m);
    labels(m, s, WD_COMPOSE_FRONT, NULL);
    deploy(m, 1, true, 0, 0, false);
    map_end(m);
}

static void group(struct em *m, const struct wd_compose_spec *s, const struct wd_compose_group *g)
{
    char buf[300];
    str(m, g->service);
    map_begin(m, false);
    common(m, s, true);
    str(m, "entrypoint");
    seq_begin(m, true);
    str(m, s->shim_bin);
    str(m, "--");
    snprintf(buf, sizeof buf, "/app/%s", s->binary_name);
    str(m, buf);
    for (size_t i = 0; i < s->nargs; i++) {
        autofree char *esc = wd_compose_escape(s->args[i]);
        str(m, esc);
    }
    seq_end(m);
    /* as `up`: [serviceweaver] env, the group's [docker] env, then ours */
    struct envmap e = {0};
    env_put_list(&e, s->env, s->nenv);
    env_put_list(&e, g->env, g->nenv);
    env_put(&e, "HOME", 4, "/tmp"); /* weaver's packages write $HOME/.local; the rootfs is r/o */
    if (s->nhost_ports) {
        struct wd_buf p = {0};
        for (size_t i = 0; i < s->nhost_ports; i++)
            wd_buf_printf(&p, "%s%u", i ? "," : "", (unsigned)s->host_ports[i]);
        autofree char *ports = wd_buf_steal_str(&p);
        env_put(&e, "WEAVER_SHIM_HOST_PORTS", 22, ports);
    }
    snprintf(buf, sizeof buf, "%s:%u", WD_COMPOSE_MANAGER, (unsigned)s->manager_port);
    env_put(&e, "WEAVER_SHIM_MANAGER", 19, buf);
    env_put(&e, "WEAVER_SHIM_GROUP", 17, g->name);
    env_put(&e, "WEAVER_SHIM_TOKEN", 17, s->token_hex);
    if (s->front_image) {
        snprintf(buf, sizeof buf, "%d", WD_COMPOSE_DRAIN_MS);
        env_put(&e, "WEAVER_SHIM_DRAIN_MS", 20, buf);
    }
    str(m, "environment");
    map_begin(m, false);
    for (size_t i = 0; i < e.n; i++) {
        autofree char *v = wd_compose_escape(e.v[i]);
        if (strcmp(e.k[i], "WEAVER_SHIM_TOKEN") == 0)
            kvq(m, e.k[i], v);
        else
            kv(m, e.k[i], v);
    }
    map_end(m);
    env_free(&e);
    if (s->nsecrets) {
        str(m, "secrets");
        seq_begin(m, false);
        for (size_t i = 0; i < s->nsecrets; i++) {
            map_begin(m, true);
            kv(m, "source", s->secrets[i].name);
            kv(m, "target", s->secrets[i].name); /* /run/secrets/NAME */
            if (s->swarm) {
                /* docker-compose 1.29 and Compose v5 bind-mount the copy as it is (already
                 * 65532, 0400) and warn that they ignore these: only swarm applies them */
                kvq(m, "uid", WD_COMPOSE_SECRET_UID);
                kvq(m, "gid", WD_COMPOSE_SECRET_UID);
                str(m, "mode");
                scalar_style(m, "0400", YAML_PLAIN_SCALAR_STYLE); /* octal in YAML 1.1: 256 */
            }
            map_end(m);
        }
        seq_end(m);
    }
    if (g->pids > 0) {
        /* the Go Compose CLI (v5.6.0) refuses pids_limit next to a deploy.resources.limits
         * without the same pids ("can't set distinct values on 'pids_limit' and
         * 'deploy.resources.limits.pids'"), and docker-compose 1.29 knows no limits.pids: such
         * a group (a file for compose only anyway) gets its memory and cpus as the service
         * keys both read. */
        char lim[40];
        str(m, "pids_limit");
        num(m, g->pids);
        if (g->memory_bytes > 0) {
            fmt_memory(g->memory_bytes, lim, sizeof lim);
            kvq(m, "mem_limit", lim);
        }
        if (g->nano_cpus > 0) {
            fmt_cpus(g->nano_cpus, lim, sizeof lim);
            kvq(m, "cpus", lim);
        }
    }
    str(m, "depends_on");
    seq_begin(m, true);
    str(m, WD_COMPOSE_MANAGER);
    seq_end(m);
    /* not for Podman: podman-compose 1.0.3 wraps the command in /bin/sh, which the image does
     * not have, and pops "CMD" off the service's list, so a second replica fails ("unknown
     * healthcheck test type"); Podman 4.3 runs healthchecks from systemd timers only and acts
     * on none of them */
    const char *hc[] = {s->shim_bin, "--health"};
    if (!s->podman)
        healthcheck(m, hc, WD_ARRAY_LEN(hc));
    labels(m, s, "weavelet", g->name);
    if (g->pids > 0) /* its limits are service keys, above */
        deploy(m, g->replicas, s->swarm, 0, 0, s->front_image != NULL);
    else
        deploy(m, g->replicas, s->swarm, g->memory_bytes, g->nano_cpus, s->front_image != NULL);
    map_end(m);
}

static bool service_name_ok(const char *n)
{
    if (n == NULL || !*n || strlen(n) > 63)
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              (*p == '.' && p != n)))
            return false;
    return true;
}

/* Named volumes, each declared once: the engine volume "APP_NAME" that `up` uses too. */
static void top_volumes(struct em *m, const struct wd_compose_spec *s)
{
    bool any = false;
    for (size_t i = 0; i < s->nvolumes; i++) {
        const struct wd_compose_volume *v = &s->volumes[i];
        bool seen = v->bind;
        for (size_t j = 0; !seen && j < i; j++)
            seen = !s->volumes[j].bind && strcmp(s->volumes[j].source, v->source) == 0;
        if (seen)
            continue;
        if (!any) {
            str(m, "volumes");
            map_begin(m, false);
            any = true;
        }
        str(m, v->source);
        map_begin(m, false);
        autofree char *name = wd_docker_volume_name(s->app, v->source);
        kv(m, "name", name);
        str(m, "labels");
        map_begin(m, false);
        kv(m, WD_LABEL_APP, s->app);
        kv(m, WD_LABEL_ROLE, "volume");
        for (size_t k = 0; k < s->nlabels; k++)
            kv(m, s->labels[k].key, s->labels[k].value);
        map_end(m);
        map_end(m);
    }
    if (any)
        map_end(m);
}

/* What the world keys of the spec must hold for the file to mean what it says. */
static int check_world(const struct wd_compose_spec *s, struct wd_error **err)
{
    for (size_t i = 0; i < s->nvolumes; i++) {
        const struct wd_compose_volume *v = &s->volumes[i];
        if (v->source == NULL || !*v->source || v->target == NULL || v->target[0] != '/' ||
            (v->bind && v->source[0] != '/'))
            return wd_err(err, EINVAL, "compose: volume %zu: bad source or target", i + 1);
    }
    for (size_t i = 0; i < s->nsecrets; i++)
        if (s->secrets[i].name == NULL || !*s->secrets[i].name || strchr(s->secrets[i].name, '/') ||
            s->secrets[i].file == NULL || !*s->secrets[i].file)
            return wd_err(err, EINVAL, "compose: secret %zu: bad name or file", i + 1);
    for (size_t i = 0; i < s->nnetworks; i++) {
        char buf[300];
        if (s->networks[i] == NULL || !*s->networks[i] || strlen(s->networks[i]) > 200)
            return wd_err(err, EINVAL, "compose: network %zu: bad name", i + 1);
        for (size_t j = 0; j < s->nnetworks; j++) /* "external-weaver" next to "weaver" */
            if (strcmp(s->networks[j], net_key(s->networks[i], buf, sizeof buf)) == 0 && i != j &&
                strcmp(s->networks[j], s->networks[i]) != 0)
                return wd_err(err, EINVAL, "compose: networks %s and %s would share a key",
                              s->networks[i], s->networks[j]);
    }
    for (size_t i = 0; i < s->nextra_hosts; i++)
        if (s->extra_hosts[i] == NULL || strchr(s->extra_hosts[i], ':') == NULL)
            return wd_err(err, EINVAL, "compose: extra host %zu is not NAME:ADDRESS", i + 1);
    return 0;
}

int wd_compose_render(const struct wd_compose_spec *s, struct wd_buf *out, struct wd_error **err)
{
    if (s->image == NULL || s->binary_name == NULL || s->manager_bin == NULL ||
        s->shim_bin == NULL || s->token_hex == NULL || s->app == NULL || s->manager_port == 0)
        return wd_err(err, EINVAL, "compose: incomplete spec");
    if (s->front_image && (!s->swarm || s->front_bin == NULL))
        return wd_err(err, EINVAL, "compose: a front is for --swarm files, with its binary");
    for (size_t i = 0; i < s->ngroups; i++) {
        const struct wd_compose_group *g = &s->groups[i];
        if (!service_name_ok(g->service) || strcmp(g->service, WD_COMPOSE_MANAGER) == 0 ||
            strcmp(g->service, WD_COMPOSE_FRONT) == 0)
            return wd_err(err, EINVAL, "compose: group %s: bad service name \"%s\"", g->name,
                          g->service ? g->service : "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->groups[j].service, g->service) == 0)
                return wd_err(err, EINVAL, "compose: groups %s and %s share service name %s",
                              s->groups[j].name, g->name, g->service);
        if (g->replicas < 1)
            return wd_err(err, EINVAL, "compose: group %s: replicas must be >= 1", g->name);
        if (g->memory_bytes < 0 || g->nano_cpus < 0 || g->pids < 0)
            return wd_err(err, EINVAL, "compose: group %s: negative limit", g->name);
    }
    int r = check_world(s, err);
    if (r < 0)
        return r;
    struct em m = {.out = out};
    if (!yaml_emitter_initialize(&m.e))
        return wd_err(err, EIO, "compose: libyaml emitter init failed");
    yaml_emitter_set_output(&m.e, write_cb, &m);
    yaml_emitter_set_unicode(&m.e, 1);
    yaml_emitter_set_width(&m.e, 100);
    yaml_emitter_set_indent(&m.e, 2);
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    emit(&m, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    emit(&m, &ev);
    map_begin(&m, false);
    if (s->swarm) {
        /* 'docker stack deploy' before CLI 23.0 refuses a file without it ("unsupported
         * Compose file version: 1.0"); the Go Compose CLI warns on every command that it is
         * obsolete, and docker-compose 1.27+ reads a file without it as the Compose
         * Specification */
        str(&m, "version");
        scalar_style(&m, WD_COMPOSE_VERSION, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    }
    str(&m, "services");
    map_begin(&m, false);
    if (s->front_image)
        front(&m, s);
    manager(&m, s);
    for (size_t i = 0; i < s->ngroups; i++)
        group(&m, s, &s->groups[i]);
    map_end(&m);
    str(&m, "networks");
    map_begin(&m, false);
    str(&m, WD_COMPOSE_NETWORK);
    map_begin(&m, false); /* no driver: compose makes a bridge, swarm an overlay */
    str(&m, "attachable");
    boolean(&m, true);
    str(&m, "labels");
    map_begin(&m, false);
    kv(&m, WD_LABEL_APP, s->app);
    kv(&m, WD_LABEL_ROLE, "network");
    for (size_t i = 0; i < s->nlabels; i++)
        kv(&m, s->labels[i].key, s->labels[i].value);
    map_end(&m);
    map_end(&m);
    for (size_t i = 0; i < s->nnetworks; i++) {
        char buf[300];
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen = seen || strcmp(s->networks[j], s->networks[i]) == 0;
        if (seen)
            continue;
        str(&m, net_key(s->networks[i], buf, sizeof buf));
        map_begin(&m, true); /* made by its owner; swarm needs an overlay network */
        str(&m, "external");
        boolean(&m, true);
        kv(&m, "name", s->networks[i]);
        map_end(&m);
    }
    map_end(&m);
    top_volumes(&m, s);
    if (s->nsecrets) {
        str(&m, "secrets");
        map_begin(&m, false);
        for (size_t i = 0; i < s->nsecrets; i++) {
            str(&m, s->secrets[i].name);
            map_begin(&m, true);
            autofree char *f = wd_compose_escape(s->secrets[i].file);
            kv(&m, "file", f);
            map_end(&m);
        }
        map_end(&m);
    }
    map_end(&m);
    yaml_document_end_event_initialize(&ev, 1);
    emit(&m, &ev);
    yaml_stream_end_event_initialize(&ev);
    emit(&m, &ev);
    bool failed = m.failed || !yaml_emitter_flush(&m.e);
    const char *problem = m.e.problem;
    int rc = failed
                 ? wd_err(err, EIO, "compose: YAML emitter: %s", problem ? problem : "write failed")
                 : 0;
    yaml_emitter_delete(&m.e);
    return rc;
}
