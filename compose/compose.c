/* compose/compose.c - see compose.h. Every value goes through libyaml's emitter, which does the
 * quoting; we only choose the style: plain for words YAML cannot misread, double-quoted for
 * anything that could become a number, bool or null ("3.8", "10s", "on"), literal for the
 * multi-line config. */
#include "compose/compose.h"

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

/* Everything both kinds of service share: image, hardening, tmpfs, network, restart. */
static void common(struct em *m, const struct wd_compose_spec *s)
{
    kv(m, "image", s->image);
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
    seq_end(m);
    str(m, "networks");
    seq_begin(m, true);
    str(m, WD_COMPOSE_NETWORK);
    seq_end(m);
    kv(m, "stop_grace_period", "10s");
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

static void deploy(struct em *m, int replicas, bool dnsrr)
{
    str(m, "deploy");
    map_begin(m, false);
    str(m, "replicas");
    num(m, replicas);
    if (dnsrr) /* one DNS answer per replica; compose ignores the key with a warning */
        kv(m, "endpoint_mode", "dnsrr");
    str(m, "restart_policy");
    map_begin(m, true);
    kv(m, "condition", "any");
    map_end(m);
    map_end(m);
}

static void manager(struct em *m, const struct wd_compose_spec *s)
{
    char port[8], buf[300];
    snprintf(port, sizeof port, "%u", (unsigned)s->manager_port);
    str(m, WD_COMPOSE_MANAGER);
    map_begin(m, false);
    common(m, s);
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
    map_end(m);
    if (s->nlisteners) {
        str(m, "ports");
        seq_begin(m, false);
        for (size_t i = 0; i < s->nlisteners; i++) {
            map_begin(m, true);
            str(m, "target");
            num(m, s->listeners[i].port);
            str(m, "published");
            num(m, s->listeners[i].port);
            kv(m, "protocol", "tcp");
            /* not the routing mesh: it needs IPVS (a VIP), and dnsrr forbids it */
            kv(m, "mode", "host");
            map_end(m);
        }
        seq_end(m);
    }
    const char *hc[] = {s->manager_bin, "manage", "--health", "--port", port};
    healthcheck(m, hc, WD_ARRAY_LEN(hc));
    labels(m, s, "manager", NULL);
    deploy(m, 1, true); /* shims reach the task itself, never a swarm VIP (IPVS) */
    map_end(m);
}

static void group(struct em *m, const struct wd_compose_spec *s, const struct wd_compose_group *g)
{
    char buf[300];
    str(m, g->service);
    map_begin(m, false);
    common(m, s);
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
    str(m, "environment");
    map_begin(m, false);
    kv(m, "HOME", "/tmp"); /* weaver's packages write $HOME/.local; the rootfs is read-only */
    for (size_t i = 0; i < s->nenv; i++) {
        const char *eq = strchr(s->env[i], '=');
        if (eq == NULL || eq == s->env[i])
            continue;
        autofree char *k = xstrndup(s->env[i], (size_t)(eq - s->env[i]));
        autofree char *v = wd_compose_escape(eq + 1);
        kv(m, k, v);
    }
    snprintf(buf, sizeof buf, "%s:%u", WD_COMPOSE_MANAGER, (unsigned)s->manager_port);
    kv(m, "WEAVER_SHIM_MANAGER", buf);
    kv(m, "WEAVER_SHIM_GROUP", g->name);
    kvq(m, "WEAVER_SHIM_TOKEN", s->token_hex);
    map_end(m);
    str(m, "depends_on");
    seq_begin(m, true);
    str(m, WD_COMPOSE_MANAGER);
    seq_end(m);
    const char *hc[] = {s->shim_bin, "--health"};
    healthcheck(m, hc, WD_ARRAY_LEN(hc));
    labels(m, s, "weavelet", g->name);
    deploy(m, g->replicas, true);
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

int wd_compose_render(const struct wd_compose_spec *s, struct wd_buf *out, struct wd_error **err)
{
    if (s->image == NULL || s->binary_name == NULL || s->manager_bin == NULL ||
        s->shim_bin == NULL || s->token_hex == NULL || s->app == NULL || s->manager_port == 0)
        return wd_err(err, EINVAL, "compose: incomplete spec");
    for (size_t i = 0; i < s->ngroups; i++) {
        const struct wd_compose_group *g = &s->groups[i];
        if (!service_name_ok(g->service) || strcmp(g->service, WD_COMPOSE_MANAGER) == 0)
            return wd_err(err, EINVAL, "compose: group %s: bad service name \"%s\"", g->name,
                          g->service ? g->service : "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->groups[j].service, g->service) == 0)
                return wd_err(err, EINVAL, "compose: groups %s and %s share service name %s",
                              s->groups[j].name, g->name, g->service);
        if (g->replicas < 1)
            return wd_err(err, EINVAL, "compose: group %s: replicas must be >= 1", g->name);
    }
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
    str(&m, "version");
    scalar_style(&m, WD_COMPOSE_VERSION, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    str(&m, "services");
    map_begin(&m, false);
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
    map_end(&m);
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
