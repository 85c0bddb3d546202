/* The envelope brain, shared by every runtime. Single-threaded: everything runs on the loop. */
#include "engine/deploy/deploy.h"
#include "engine/deploy/deploy_internal.h"
#include "engine/docker/json.h"
#include "engine/base/log.h"
#include "engine/deploy/mtls.h"
#include "engine/deploy/operate.h"
#include "engine/deploy/rollout.h"
#include "engine/deploy/proxy.h"
#include "engine/deploy/state.h"
#include "engine/base/termout.h"
#include "engine/base/worker.h"

/* protobuf-c's INIT macros cast away const and its messages hold `char *`: we hand it borrowed
 * strings for packing only. */
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "pipes.pb-c.h"
#include "runtime.pb-c.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HEALTH_EVERY_MS 5000
#define STOP_GRACE_MS 5000
#define ABANDON_MS 10000
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 10000
#define RESTART_LIMIT_MS 3600000 /* the longest either bound of the knob may be: an hour */
#define STABLE_MS 30000

/* ---------- protobuf helpers ---------- */

uint8_t *wd_deploy_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xmalloc(*len ? *len : 1);
    protobuf_c_message_pack(m, buf);
    return buf;
}

static void call_msg(struct wd_replica *r, enum wd_rpc_method m, const ProtobufCMessage *msg,
                     wd_call_fn fn, void *arg);

static void ignore_reply(struct wd_conn *c, const char *errmsg, const uint8_t *pb, size_t len,
                         void *arg)
{
    (void)pb;
    (void)len;
    (void)arg;
    if (errmsg && !strstr(errmsg, "connection closed") && !strstr(errmsg, "closed"))
        wd_warn("%s: %s", wd_conn_name(c), errmsg);
}

static void call_msg(struct wd_replica *r, enum wd_rpc_method m, const ProtobufCMessage *msg,
                     wd_call_fn fn, void *arg)
{
    if (r->ctl == NULL) {
        if (fn && fn != ignore_reply)
            fn(NULL, "not connected", NULL, 0, arg);
        return;
    }
    size_t len = 0;
    autofree uint8_t *buf = wd_deploy_pack(msg, &len);
    wd_conn_call(r->ctl, m, buf, len, fn ? fn : ignore_reply, arg);
}

void wd_replica_call(struct wd_replica *r, enum wd_rpc_method m, const ProtobufCMessage *msg,
                     wd_call_fn fn, void *arg)
{
    call_msg(r, m, msg, fn, arg);
}

/* ---------- routing ---------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Dial addresses of a group's ready replicas, sorted. Array caller-owned; strings borrowed. */
static char **ready_addrs(struct wd_group *g, size_t *n)
{
    char **v = xcalloc((size_t)g->nreplicas + 1, sizeof *v);
    *n = 0;
    for (int i = 0; i < g->nreplicas; i++) {
        struct wd_replica *r = g->replicas[i];
        if (r && r->state == WD_R_READY && r->dial_addr && !r->retiring)
            v[(*n)++] = r->dial_addr;
    }
    qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void send_routing(struct wd_replica *r, struct wd_component *c);

/* The reply to an UpdateRoutingInfo: the next one for that component may go, built from the
 * state of now. The arg names the replica by its generation, not by pointer: it may be gone. */
struct route_tok {
    struct wd_deploy *d;
    uint64_t gen;
    struct wd_component *c;
};

static struct wd_replica *replica_by_gen(struct wd_deploy *d, uint64_t gen)
{
    for (size_t i = 0; i < d->ngroups; i++)
        for (int j = 0; j < d->groups[i]->nreplicas; j++)
            if (d->groups[i]->replicas[j] && d->groups[i]->replicas[j]->gen == gen)
                return d->groups[i]->replicas[j];
    return NULL;
}

static struct wd_route_out *route_out(struct wd_replica *r, struct wd_component *c)
{
    for (size_t i = 0; i < r->nroutes; i++)
        if (r->routes[i].c == c)
            return &r->routes[i];
    r->routes = xrealloc(r->routes, (r->nroutes + 1) * sizeof *r->routes);
    r->routes[r->nroutes] = (struct wd_route_out){.c = c};
    return &r->routes[r->nroutes++];
}

static void routing_reply(struct wd_conn *conn, const char *errmsg, const uint8_t *pb, size_t len,
                          void *arg)
{
    struct route_tok *tok = arg;
    struct wd_replica *r = replica_by_gen(tok->d, tok->gen);
    struct wd_component *c = tok->c;
    free(tok);
    if (conn)
        ignore_reply(conn, errmsg, pb, len, NULL);
    if (r == NULL)
        return;
    struct wd_route_out *o = route_out(r, c);
    o->inflight = false;
    if (o->dirty && r->ctl && r->state != WD_R_DEAD) {
        o->dirty = false;
        send_routing(r, c);
    }
}

/* Send routing info for component c to replica r (remote form, with an assignment if routed):
 * weaver multi's EqualSlices over the sorted replicas (§7.3). While one is in flight, the next
 * waits for its reply and then carries the state of that moment. */
static void send_routing(struct wd_replica *r, struct wd_component *c)
{
    struct wd_route_out *o = route_out(r, c);
    if (o->inflight) {
        o->dirty = true;
        return;
    }
    if (r->ctl == NULL)
        return;
    o->inflight = true;
    size_t n = 0;
    autofree char **addrs = ready_addrs(c->group, &n);
    Runtime__RoutingInfo ri = RUNTIME__ROUTING_INFO__INIT;
    ri.component = c->name;
    ri.n_replicas = n;
    ri.replicas = addrs;
    Runtime__Assignment as = RUNTIME__ASSIGNMENT__INIT;
    Runtime__Assignment__Slice slices[64];
    Runtime__Assignment__Slice *sp[64];
    if (c->routed) {
        size_t ns = 0;
        if (n > 0) {
            size_t pow2 = 1;
            while (pow2 < n)
                pow2 *= 2;
            ns = pow2 > 64 ? 64 : pow2;
            uint64_t step = UINT64_MAX / ns;
            for (size_t i = 0; i < ns; i++) {
                runtime__assignment__slice__init(&slices[i]);
                slices[i].start = i * step;
                slices[i].n_replicas = 1;
                slices[i].replicas = &addrs[i % n];
                sp[i] = &slices[i];
            }
        }
        as.n_slices = ns;
        as.slices = sp;
        as.version = c->assign_version;
        ri.assignment = &as;
    }
    Runtime__UpdateRoutingInfoRequest req = RUNTIME__UPDATE_ROUTING_INFO_REQUEST__INIT;
    req.routing_info = &ri;
    struct route_tok *tok = xzalloc(sizeof *tok);
    *tok = (struct route_tok){.d = r->d, .gen = r->gen, .c = c};
    call_msg(r, WD_M_UPDATE_ROUTING_INFO, &req.base, routing_reply, tok);
}

static void send_local_routing(struct wd_replica *r, const char *component)
{
    Runtime__RoutingInfo ri = RUNTIME__ROUTING_INFO__INIT;
    ri.component = (char *)component;
    ri.local = true;
    Runtime__UpdateRoutingInfoRequest req = RUNTIME__UPDATE_ROUTING_INFO_REQUEST__INIT;
    req.routing_info = &ri;
    call_msg(r, WD_M_UPDATE_ROUTING_INFO, &req.base, NULL, NULL);
}

/* The replica set of c's group changed: push new routing info to every subscriber. */
static void publish_group(struct wd_group *g)
{
    for (size_t i = 0; i < g->ncomps; i++) {
        struct wd_component *c = g->comps[i];
        if (!c->started)
            continue;
        if (c->routed)
            c->assign_version++;
        for (size_t j = 0; j < c->nsubs; j++)
            send_routing(c->subs[j], c);
    }
}

static void send_components(struct wd_replica *r)
{
    struct wd_group *g = r->g;
    char **names = xcalloc(g->ncomps + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < g->ncomps; i++)
        if (g->comps[i]->started)
            names[n++] = g->comps[i]->name;
    Runtime__UpdateComponentsRequest req = RUNTIME__UPDATE_COMPONENTS_REQUEST__INIT;
    req.n_components = n;
    req.components = names;
    if (n > 0)
        call_msg(r, WD_M_UPDATE_COMPONENTS, &req.base, NULL, NULL);
    free(names);
}

/* ---------- replicas ---------- */

static void launch_replica(struct wd_group *g, int slot, int restarts, const char *last_exit);

static void group_activate(struct wd_group *g)
{
    if (g->active)
        return;
    g->active = true;
    if (g->d->rt->external)
        return; /* its replicas register themselves (wd_group_add_replica) */
    wd_info("starting group %s (%d replica%s)", g->short_name, g->nreplicas,
            g->nreplicas == 1 ? "" : "s");
    for (int i = 0; i < g->nreplicas; i++)
        launch_replica(g, i, 0, NULL);
}

static void unsubscribe(struct wd_deploy *d, struct wd_replica *r)
{
    for (size_t i = 0; i < d->ncomps; i++) {
        struct wd_component *c = d->comps[i];
        size_t k = 0;
        for (size_t j = 0; j < c->nsubs; j++)
            if (c->subs[j] != r)
                c->subs[k++] = c->subs[j];
        c->nsubs = k;
    }
}

static void check_all_gone(struct wd_deploy *d);
static void write_status(struct wd_deploy *d);

static void health_tick(struct wd_timer *t, void *arg);

static void on_health(struct wd_conn *c, const char *errmsg, const uint8_t *pb, size_t len,
                      void *arg)
{
    (void)c;
    struct wd_replica *r = arg;
    if (errmsg) {
        r->health = RUNTIME__HEALTH_STATUS__UNKNOWN;
    } else {
        Runtime__GetHealthReply *rep = runtime__get_health_reply__unpack(NULL, len, pb);
        r->health = rep ? (int)rep->status : RUNTIME__HEALTH_STATUS__UNKNOWN;
        runtime__get_health_reply__free_unpacked(rep, NULL);
    }
    if (r->broken)
        r->health = RUNTIME__HEALTH_STATUS__UNHEALTHY;
    if (r->d->rt->health && r->state == WD_R_READY)
        r->d->rt->health(r->d, r, r->health);
    write_status(r->d); /* at once: ps may be asked the moment up -d returns */
    if (r->state == WD_R_READY && !r->d->stopping)
        r->health_timer = wd_timer_add(r->d->loop, HEALTH_EVERY_MS, health_tick, r);
}

static void health_tick(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_replica *r = arg;
    r->health_timer = NULL;
    Runtime__GetHealthRequest req = RUNTIME__GET_HEALTH_REQUEST__INIT;
    call_msg(r, WD_M_GET_HEALTH, &req.base, on_health, r);
}

/* The app answers once main runs and every listener has a backend: tell `up -d`. */
static void check_ready(struct wd_deploy *d)
{
    if (d->announced_ready || d->stopping)
        return;
    bool main_ready = false;
    for (size_t i = 0; i < d->ngroups; i++)
        if (d->groups[i]->has_main)
            for (int j = 0; j < d->groups[i]->nreplicas; j++)
                if (d->groups[i]->replicas[j] && d->groups[i]->replicas[j]->state == WD_R_READY)
                    main_ready = true;
    if (!main_ready)
        return;
    for (size_t i = 0; i < d->ngroups; i++) { /* every group started so far serves */
        struct wd_group *g = d->groups[i];
        bool any = !g->active || d->rt->external;
        for (int j = 0; j < g->nreplicas && !any; j++)
            any = g->replicas[j] && g->replicas[j]->state == WD_R_READY;
        if (!any)
            return;
    }
    for (size_t i = 0; i < d->nlisteners; i++)
        if (wd_proxy_nbackends(d->listeners[i].proxy) == 0)
            return;
    if (wd_rollout_pending(d)) { /* serving, but not yet the app's: rollout.c goes on */
        wd_rollout_ready(d);
        return;
    }
    wd_deploy_announce_ready(d);
}

void wd_deploy_announce_ready(struct wd_deploy *d)
{
    if (d->announced_ready)
        return;
    d->announced_ready = true;
    write_status(d);
    wd_info("%s is ready", d->app);
    if (d->opts.ready_fd >= 0) {
        struct wd_buf b = {0};
        wd_buf_printf(&b, "ready");
        for (size_t i = 0; i < d->nlisteners; i++)
            wd_buf_printf(&b, "%s%s=%s", i ? ";" : " ", d->listeners[i].name,
                          wd_proxy_address(d->listeners[i].proxy));
        wd_buf_append(&b, "\n", 1);
        (void)!write(d->opts.ready_fd, b.data, b.len);
        wd_buf_free(&b);
        d->opts.ready_fd = -1; /* the caller owns and closes it */
    }
}

static void start_reachable(struct wd_deploy *d);

static void on_init(struct wd_conn *c, const char *errmsg, const uint8_t *pb, size_t len,
                    void *arg)
{
    (void)c;
    struct wd_replica *r = arg;
    struct wd_deploy *d = r->d;
    if (r->state == WD_R_DEAD || d->stopping)
        return;
    if (errmsg) {
        wd_warn("group %s: InitWeavelet failed: %s", r->g->short_name, errmsg);
        d->rt->stop(d, r, true);
        return;
    }
    Runtime__InitWeaveletReply *rep = runtime__init_weavelet_reply__unpack(NULL, len, pb);
    if (rep == NULL || rep->dial_addr == NULL || !*rep->dial_addr || rep->version == NULL) {
        runtime__init_weavelet_reply__free_unpacked(rep, NULL);
        wd_deploy_fail(d, "group %s: the weavelet sent an invalid InitWeavelet reply",
                       r->g->short_name);
        return;
    }
    /* the version the binary announced (v0.24.0, or v0.23.0 for weaver v0.23.x) */
    if (rep->version->major != d->bin->api_major || rep->version->minor != d->bin->api_minor ||
        rep->version->patch != d->bin->api_patch) {
        wd_deploy_fail(d,
                       "the weavelet speaks deployer API v%lld.%lld.%lld, not the one its binary "
                       "says (v%d.%d.%d)",
                       (long long)rep->version->major, (long long)rep->version->minor,
                       (long long)rep->version->patch, d->bin->api_major, d->bin->api_minor,
                       d->bin->api_patch);
        runtime__init_weavelet_reply__free_unpacked(rep, NULL);
        return;
    }
    free(r->dial_addr);
    r->dial_addr = xstrdup(rep->dial_addr);
    runtime__init_weavelet_reply__free_unpacked(rep, NULL);
    r->state = WD_R_READY;
    r->health = RUNTIME__HEALTH_STATUS__HEALTHY;
    wd_info("group %s replica %d ready at %s (weavelet %.8s)", r->g->short_name, r->slot,
            r->dial_addr, r->id);
    send_components(r);
    publish_group(r->g);
    wd_timer_cancel(r->health_timer); /* a second InitWeavelet must not start a second chain */
    r->health_timer = wd_timer_add(d->loop, HEALTH_EVERY_MS, health_tick, r);
    if (d->rt->ready)
        d->rt->ready(d, r);
    check_ready(d);
}

static void ctl_closed(struct wd_conn *c, const char *reason, void *arg)
{
    (void)reason;
    struct wd_replica *r = arg;
    if (r->ctl == c)
        r->ctl = NULL;
}

/* Close a connection of ours: its close callback does not run, so the log jobs that would answer
 * on it forget it here. NULL-safe. */
static void drop_conn(struct wd_deploy *d, struct wd_conn *c, const char *why)
{
    if (c == NULL)
        return;
    wd_deploy_log_forget(d, NULL, c);
    wd_conn_close(c, why);
}

/* The config's sections as the entries of a map<string, string> field whose entry type is
 * @entry (InitWeaveletRequest.sections, or EnvelopeInfo.sections of the pipe releases): an
 * array of nsections message pointers, the entries in the same block (one free). Keys and
 * values are borrowed from the config. */
static void *section_entries(const struct wd_config *cfg, const ProtobufCMessageDescriptor *entry)
{
    size_t n = cfg->nsections;
    const ProtobufCFieldDescriptor *k =
        protobuf_c_message_descriptor_get_field_by_name(entry, "key");
    const ProtobufCFieldDescriptor *v =
        protobuf_c_message_descriptor_get_field_by_name(entry, "value");
    ProtobufCMessage **ptrs = xcalloc(1, (n + 1) * (sizeof *ptrs + entry->sizeof_message));
    uint8_t *mem = (uint8_t *)(ptrs + n + 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t *m = mem + i * entry->sizeof_message;
        protobuf_c_message_init(entry, m);
        memcpy(m + k->offset, &cfg->sections[i].name, sizeof(char *));
        memcpy(m + v->offset, &cfg->sections[i].text, sizeof(char *));
        ptrs[i] = (ProtobufCMessage *)m;
    }
    return ptrs;
}

void wd_replica_attach_control(struct wd_replica *r, int fd)
{
    struct wd_deploy *d = r->d;
    struct wd_conn_ops ops = {.on_close = ctl_closed, .arg = r};
    char name[96];
    snprintf(name, sizeof name, "%s/%d weaveletControl", r->g->short_name, r->slot);
    drop_conn(d, r->ctl, "replaced");
    r->ctl = wd_conn_new(d->loop, fd, true, d->bin->hdr_fmt, &ops, name);
    Runtime__InitWeaveletRequest req = RUNTIME__INIT_WEAVELET_REQUEST__INIT;
    req.n_sections = d->cfg->nsections;
    req.sections =
        section_entries(d->cfg, &runtime__init_weavelet_request__sections_entry__descriptor);
    call_msg(r, WD_M_INIT_WEAVELET, &req.base, on_init, r);
    free(req.sections);
}

/* A weavelet of weaver v0.20-v0.22: one stream for both directions (the two pipes, or the
 * shim's link standing for them). */
static void pipe_closed(struct wd_conn *c, const char *reason, void *arg)
{
    (void)reason;
    struct wd_replica *r = arg;
    wd_deploy_log_forget(r->d, NULL, c);
    if (r->ctl == c)
        r->ctl = NULL;
}

static void on_request(struct wd_conn *c, uint64_t id, enum wd_rpc_method m, const uint8_t *pb,
                       size_t len, void *arg);

void wd_replica_attach_pipe(struct wd_replica *r, int fd, const char *internal_address)
{
    struct wd_deploy *d = r->d;
    struct wd_conn_ops ops = {.on_request = on_request, .on_close = pipe_closed, .arg = r};
    char name[96];
    snprintf(name, sizeof name, "%s/%d pipes", r->g->short_name, r->slot);
    drop_conn(d, r->ctl, "replaced");
    r->ctl = wd_conn_new_pipe(d->loop, fd, &ops, name);
    /* the handshake: EnvelopeInfo carries what WEAVELET_ARGS and InitWeavelet carry later */
    Pipes__EnvelopeInfo info = PIPES__ENVELOPE_INFO__INIT;
    info.app = d->app;
    info.deployment_id = d->deployment_id;
    info.id = r->id;
    info.has_run_main = info.run_main = r->g->has_main;
    info.has_mtls = info.mtls = d->mtls != NULL;
    if (internal_address && *internal_address)
        info.internal_address = (char *)internal_address;
    info.n_sections = d->cfg->nsections;
    info.sections = section_entries(d->cfg, &pipes__envelope_info__sections_entry__descriptor);
    call_msg(r, WD_M_INIT_WEAVELET, &info.base, on_init, r);
    free(info.sections);
}

/* ---------- deployerControl handlers ---------- */

static void reply_msg(struct wd_conn *c, uint64_t id, enum wd_rpc_method m,
                      const ProtobufCMessage *msg, const char *errmsg)
{
    size_t len = 0;
    autofree uint8_t *buf = wd_deploy_pack(msg, &len);
    wd_conn_reply(c, id, m, buf, len, errmsg);
}

static bool asked_before(struct wd_replica *r, const char *comp)
{
    for (size_t i = 0; i < r->nasked; i++)
        if (strcmp(r->asked[i], comp) == 0)
            return true;
    r->asked = xrealloc(r->asked, (r->nasked + 1) * sizeof *r->asked);
    r->asked[r->nasked++] = xstrdup(comp);
    return false;
}

static void activate(struct wd_replica *r, const char *name, bool routed)
{
    struct wd_deploy *d = r->d;
    struct wd_component *c = wd_deploy_comp(d, name);
    if (c == NULL) /* not in the binary's call graph: host it in a group of its own */
        c = wd_deploy_comp_alone(d, name);
    if (routed)
        c->routed = true;
    if (!asked_before(r, name)) {
        if (!routed && c->group == r->g) {
            send_local_routing(r, name);
        } else {
            c->subs = xrealloc(c->subs, (c->nsubs + 1) * sizeof *c->subs);
            c->subs[c->nsubs++] = r;
            send_routing(r, c);
        }
    }
    if (!c->started) {
        c->started = true;
        if (c->routed)
            c->assign_version++;
        struct wd_group *g = c->group;
        for (int i = 0; i < g->nreplicas; i++)
            if (g->replicas[i] && g->replicas[i]->state == WD_R_READY)
                send_components(g->replicas[i]);
        for (size_t j = 0; j < c->nsubs; j++)
            send_routing(c->subs[j], c);
    }
    group_activate(c->group);
}

static struct wd_listener *find_listener(struct wd_deploy *d, const char *name)
{
    for (size_t i = 0; i < d->nlisteners; i++)
        if (strcmp(d->listeners[i].name, name) == 0)
            return &d->listeners[i];
    return NULL;
}

static int open_listener(struct wd_deploy *d, const char *name, const char *component,
                         struct wd_error **err);

/* weaver logs "Failed to construct component" (system, error) when a component's Init fails,
 * e.g. its database is unreachable, and never retries: the weavelet stays up, healthy by
 * GetHealth, and every call to the component hangs. Say so where the user looks (the log,
 * always shown) and report the replica unhealthy, so ps and the engine's health show it. */
void wd_replica_construct_failed(struct wd_replica *r, const char *comp, const char *why)
{
    if (r->broken)
        return;
    const char *inner = strstr(why, " initialization failed: ");
    if (inner) /* weaver's wrapping: 'component "example.com/app/C" initialization failed: ' */
        why = inner + strlen(" initialization failed: ");
    autofree char *first = xstrndup(why, strcspn(why, "\n")); /* weaver joins wrapped errors
                                                                  with newlines */
    r->broken = xasprintf("%s: %s", comp, first);
    wd_deploy_event(r->d, "error",
                    "group %s replica %d: component %s failed to construct (%s); weaver does not "
                    "retry it: fix the cause and restart the app",
                    r->g->short_name, r->slot, comp, first);
    r->health = RUNTIME__HEALTH_STATUS__UNHEALTHY;
    if (r->d->rt->health && r->state == WD_R_READY)
        r->d->rt->health(r->d, r, r->health);
}

/* ---------- mtls (weaver-protocol.md §3.7; engine/deploy/mtls.h) ---------- */

/* The group's identity, issued on first use. Its name is the group's slug (unique among the
 * groups of build_groups), cut to fit a DNS label; a name another group's certificate already
 * carries (a group added at run time by activate) gets the group's index appended. */
static struct wd_mtls_cert *group_cert(struct wd_group *g, struct wd_error **err)
{
    struct wd_deploy *d = g->d;
    if (g->cert)
        return g->cert;
    char name[WD_MTLS_MAX_NAME + 1];
    snprintf(name, sizeof name, "%.48s", g->slug);
    for (size_t i = 0; i < d->ngroups; i++)
        if (d->groups[i]->cert && strcmp(d->groups[i]->cert->name, name) == 0) {
            snprintf(name, sizeof name, "%.48s-g%zu", g->slug, g->idx);
            break;
        }
    if (wd_mtls_issue(d->mtls, name, &g->cert, err) < 0)
        return NULL;
    wd_info("mtls: issued the certificate of group %s (%s)", g->short_name, name);
    return g->cert;
}

/* The group whose certificate carries this name, or NULL. */
static struct wd_group *group_by_cert(struct wd_deploy *d, const char *name)
{
    for (size_t i = 0; i < d->ngroups; i++)
        if (d->groups[i]->cert && strcmp(d->groups[i]->cert->name, name) == 0)
            return d->groups[i];
    return NULL;
}

/* The group's component names, borrowed, in an array the caller frees. */
static const char **group_names(const struct wd_group *g)
{
    const char **v = xcalloc(g->ncomps + 1, sizeof *v);
    for (size_t i = 0; i < g->ncomps; i++)
        v[i] = g->comps[i]->name;
    return v;
}

/* Verify a forwarded chain (DER, leaf first) and map its leaf to one of our groups. */
static struct wd_group *chain_group(struct wd_deploy *d, enum wd_mtls_role role,
                                    const ProtobufCBinaryData *chain, size_t n,
                                    struct wd_error **err)
{
    if (n > WD_MTLS_MAX_CHAIN)
        n = WD_MTLS_MAX_CHAIN + 1; /* refused by wd_mtls_verify; no need to look further */
    const uint8_t *der[WD_MTLS_MAX_CHAIN + 1];
    size_t len[WD_MTLS_MAX_CHAIN + 1];
    for (size_t i = 0; i < n; i++) {
        der[i] = chain[i].data;
        len[i] = chain[i].len;
    }
    autofree char *name = NULL;
    if (wd_mtls_verify(d->mtls, role, der, len, n, &name, err) < 0)
        return NULL;
    struct wd_group *g = group_by_cert(d, name);
    if (g == NULL)
        wd_err(err, EINVAL, "mtls: the certificate names \"%s\", no group of this deployment",
               name);
    return g;
}

/* The weavelet asks for its key pair before each TLS handshake, as client and as server. The
 * key travels only over this control connection (a Unix socket, or the shim's authenticated
 * link) and stays in the weavelet's memory. */
static void self_certificate(struct wd_replica *r, struct wd_conn *c, uint64_t id)
{
    struct wd_deploy *d = r->d;
    if (d->mtls == NULL) {
        wd_conn_reply(c, id, WD_M_GET_SELF_CERTIFICATE, NULL, 0, "mtls is off ([docker] mtls)");
        return;
    }
    autoerr struct wd_error *err = NULL;
    struct wd_mtls_cert *cert = group_cert(r->g, &err);
    if (cert == NULL) {
        wd_deploy_event(d, "error", "group %s: %s", r->g->short_name, err->msg);
        wd_conn_reply(c, id, WD_M_GET_SELF_CERTIFICATE, NULL, 0, err->msg);
        return;
    }
    Runtime__GetSelfCertificateReply rep = RUNTIME__GET_SELF_CERTIFICATE_REPLY__INIT;
    rep.cert = (ProtobufCBinaryData){.len = cert->cert_len, .data = (uint8_t *)cert->cert_pem};
    rep.key = (ProtobufCBinaryData){.len = cert->key_len, .data = (uint8_t *)cert->key_pem};
    size_t n = 0;
    uint8_t *buf = wd_deploy_pack(&rep.base, &n);
    wd_conn_reply(c, id, WD_M_GET_SELF_CERTIFICATE, buf, n, NULL);
    explicit_bzero(buf, n); /* one copy of the key fewer in our heap */
    free(buf);
}

/* Server side of a data-plane connection: who is calling, and what may it call here? The
 * components a group may call are the binary's call-graph edges out of its components; of
 * those, the ones this weavelet's group hosts get handlers on the connection. An error fails
 * the handshake (and, in weaver v0.24.6, stops the weavelet: README "mTLS"). */
static void verify_client(struct wd_replica *r, struct wd_conn *c, uint64_t id, const uint8_t *pb,
                          size_t len)
{
    struct wd_deploy *d = r->d;
    const enum wd_rpc_method m = WD_M_VERIFY_CLIENT_CERTIFICATE;
    if (d->mtls == NULL) {
        wd_conn_reply(c, id, m, NULL, 0, "mtls is off ([docker] mtls)");
        return;
    }
    Runtime__VerifyClientCertificateRequest *req =
        runtime__verify_client_certificate_request__unpack(NULL, len, pb);
    if (req == NULL) {
        wd_conn_reply(c, id, m, NULL, 0, "malformed VerifyClientCertificateRequest");
        return;
    }
    autoerr struct wd_error *err = NULL;
    struct wd_group *caller = chain_group(d, WD_MTLS_CLIENT, req->cert_chain, req->n_cert_chain,
                                          &err);
    runtime__verify_client_certificate_request__free_unpacked(req, NULL);
    if (caller == NULL) {
        wd_deploy_event(d, "warn", "group %s replica %d refused a connection: %s",
                        r->g->short_name, r->slot, err->msg);
        wd_conn_reply(c, id, m, NULL, 0, err->msg);
        return;
    }
    autofree const char **from = group_names(caller);
    autofree const char **here = group_names(r->g);
    autofree const char **ok = NULL;
    size_t nok = 0;
    wd_mtls_callable(d->bin->edges, d->bin->nedges, from, caller->ncomps, here, r->g->ncomps, &ok,
                     &nok);
    wd_debug("mtls: group %s replica %d accepts group %s for %zu component%s", r->g->short_name,
             r->slot, caller->short_name, nok, nok == 1 ? "" : "s");
    Runtime__VerifyClientCertificateReply rep = RUNTIME__VERIFY_CLIENT_CERTIFICATE_REPLY__INIT;
    rep.n_components = nok;
    rep.components = (char **)ok;
    reply_msg(c, id, m, &rep.base, NULL);
}

/* Client side: the weavelet dialed a replica of target_component's group; the certificate
 * the server presented must be that group's. */
static void verify_server(struct wd_replica *r, struct wd_conn *c, uint64_t id, const uint8_t *pb,
                          size_t len)
{
    struct wd_deploy *d = r->d;
    const enum wd_rpc_method m = WD_M_VERIFY_SERVER_CERTIFICATE;
    if (d->mtls == NULL) {
        wd_conn_reply(c, id, m, NULL, 0, "mtls is off ([docker] mtls)");
        return;
    }
    Runtime__VerifyServerCertificateRequest *req =
        runtime__verify_server_certificate_request__unpack(NULL, len, pb);
    if (req == NULL || req->target_component == NULL || !*req->target_component) {
        runtime__verify_server_certificate_request__free_unpacked(req, NULL);
        wd_conn_reply(c, id, m, NULL, 0, "malformed VerifyServerCertificateRequest");
        return;
    }
    autoerr struct wd_error *err = NULL;
    struct wd_group *server = chain_group(d, WD_MTLS_SERVER, req->cert_chain, req->n_cert_chain,
                                          &err);
    if (server) {
        autofree const char **names = group_names(server);
        if (!wd_mtls_hosts(names, server->ncomps, req->target_component))
            wd_err(&err, EACCES,
                   "mtls: the server's certificate is group %s's, which does not host %s",
                   server->short_name, req->target_component);
    }
    runtime__verify_server_certificate_request__free_unpacked(req, NULL);
    if (err) {
        wd_deploy_event(d, "warn", "group %s replica %d refused a server: %s", r->g->short_name,
                        r->slot, err->msg);
        wd_conn_reply(c, id, m, NULL, 0, err->msg);
        return;
    }
    Runtime__VerifyServerCertificateReply rep = RUNTIME__VERIFY_SERVER_CERTIFICATE_REPLY__INIT;
    reply_msg(c, id, m, &rep.base, NULL);
}

static void on_request(struct wd_conn *c, uint64_t id, enum wd_rpc_method m, const uint8_t *pb,
                       size_t len, void *arg)
{
    struct wd_replica *r = arg;
    struct wd_deploy *d = r->d;
    switch (m) {
    case WD_M_ACTIVATE_COMPONENT: {
        Runtime__ActivateComponentRequest *req =
            runtime__activate_component_request__unpack(NULL, len, pb);
        if (req == NULL || req->component == NULL || !*req->component) {
            wd_conn_reply(c, id, m, NULL, 0, "malformed ActivateComponentRequest");
        } else {
            activate(r, req->component, req->routed);
            Runtime__ActivateComponentReply rep = RUNTIME__ACTIVATE_COMPONENT_REPLY__INIT;
            reply_msg(c, id, m, &rep.base, NULL);
        }
        runtime__activate_component_request__free_unpacked(req, NULL);
        break;
    }
    case WD_M_GET_LISTENER_ADDRESS: {
        Runtime__GetListenerAddressRequest *req =
            runtime__get_listener_address_request__unpack(NULL, len, pb);
        Runtime__GetListenerAddressReply rep = RUNTIME__GET_LISTENER_ADDRESS_REPLY__INIT;
        rep.address = (char *)d->rt->listen_address(d, r);
        reply_msg(c, id, m, &rep.base, req ? NULL : "malformed GetListenerAddressRequest");
        runtime__get_listener_address_request__free_unpacked(req, NULL);
        break;
    }
    case WD_M_EXPORT_LISTENER: {
        Runtime__ExportListenerRequest *req =
            runtime__export_listener_request__unpack(NULL, len, pb);
        Runtime__ExportListenerReply rep = RUNTIME__EXPORT_LISTENER_REPLY__INIT;
        autoerr struct wd_error *err = NULL;
        if (req == NULL || req->listener == NULL || req->address == NULL) {
            rep.error = (char *)"malformed ExportListenerRequest";
        } else {
            struct wd_listener *l = find_listener(d, req->listener);
            if (l == NULL && open_listener(d, req->listener, r->g->name, &err) < 0) {
                rep.error = err->msg; /* permanent: the weavelet does not retry */
                wd_deploy_fail(d, "%s", err->msg);
            }
            l = find_listener(d, req->listener);
            if (l && !r->retiring) {
                autofree char *be = d->rt->backend_address(d, r, req->address);
                wd_proxy_add_backend(l->proxy, be, r);
                rep.proxy_address = (char *)wd_proxy_address(l->proxy);
                if (!l->announced) {
                    l->announced = true;
                    wd_info("listener \"%s\" serving at %s", l->name, wd_proxy_address(l->proxy));
                }
                check_ready(d);
            }
        }
        reply_msg(c, id, m, &rep.base, NULL);
        runtime__export_listener_request__free_unpacked(req, NULL);
        break;
    }
    case WD_M_LOG_BATCH: /* answered by log_done, once written */
        wd_deploy_log_batch(d, r, pb, len, c, id, m);
        break;
    case WD_M_HANDLE_TRACE_SPANS:
        wd_deploy_trace_spans(d, r, pb, len);
        wd_conn_reply(c, id, m, NULL, 0, NULL);
        break;
    case WD_M_GET_SELF_CERTIFICATE:
        self_certificate(r, c, id);
        break;
    case WD_M_VERIFY_CLIENT_CERTIFICATE:
        verify_client(r, c, id, pb, len);
        break;
    case WD_M_VERIFY_SERVER_CERTIFICATE:
        verify_server(r, c, id, pb, len);
        break;
    default:
        wd_conn_reply(c, id, m, NULL, 0, "internal error: unknown function");
        break;
    }
}

static void dep_closed(struct wd_conn *c, const char *reason, void *arg)
{
    (void)reason;
    struct wd_replica *r = arg;
    wd_deploy_log_forget(r->d, NULL, c);
    if (r->dep == c)
        r->dep = NULL;
    if (r->state != WD_R_DEAD && !r->d->stopping && r->d->rt->dep_lost)
        r->d->rt->dep_lost(r->d, r);
}

void wd_replica_attach_deployer(struct wd_replica *r, int fd)
{
    struct wd_conn_ops ops = {.on_request = on_request, .on_close = dep_closed, .arg = r};
    char name[96];
    snprintf(name, sizeof name, "%s/%d deployerControl", r->g->short_name, r->slot);
    drop_conn(r->d, r->dep, "replaced by a new connection");
    r->dep = wd_conn_new(r->d->loop, fd, false, r->d->bin->hdr_fmt, &ops, name);
}

void wd_replica_output(struct wd_replica *r, const char *stream, const char *line)
{
    Runtime__LogEntry e = RUNTIME__LOG_ENTRY__INIT;
    e.app = r->d->app;
    e.version = r->d->deployment_id;
    e.component = (char *)stream;
    e.node = r->id;
    e.level = (char *)stream;
    e.file = (char *)"";
    e.line = -1;
    e.msg = (char *)line;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e.time_micros = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    wd_deploy_log_entry(r->d, &e, false);
}

char *wd_replica_weavelet_args(struct wd_replica *r, const char *control_socket,
                               const char *redirect, const char *internal_address)
{
    Runtime__WeaveletArgs a = RUNTIME__WEAVELET_ARGS__INIT;
    Runtime__WeaveletArgs__Redirect rd = RUNTIME__WEAVELET_ARGS__REDIRECT__INIT;
    Runtime__WeaveletArgs__Redirect *rds[1] = {&rd};
    a.app = r->d->app;
    a.deployment_id = r->d->deployment_id;
    a.id = r->id;
    a.run_main = r->g->has_main;
    a.mtls = r->d->mtls != NULL; /* dial addresses become mtls://tcp://... */
    a.internal_address = (char *)internal_address;
    rd.component = (char *)WD_DEPLOYER_CONTROL;
    rd.target = (char *)WD_DEPLOYER_CONTROL;
    rd.address = (char *)redirect;
    a.n_redirects = 1;
    a.redirects = rds;
    a.control_socket = (char *)control_socket;
    size_t len = 0;
    autofree uint8_t *buf = wd_deploy_pack(&a.base, &len);
    return wd_base64(buf, len);
}

char *wd_deploy_new_id(void)
{
    uint8_t u[16];
    wd_random(u, sizeof u);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    char h[33];
    wd_hex(u, 16, h);
    return xasprintf("%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

static void free_replica(struct wd_replica *r)
{
    wd_deploy_log_forget(r->d, r, NULL);
    for (size_t i = 0; i < r->nasked; i++)
        free(r->asked[i]);
    free(r->asked);
    free(r->routes);
    free(r->dial_addr);
    free(r->id);
    free(r->last_exit);
    free(r->broken);
    free(r);
}

static struct wd_replica *new_replica(struct wd_group *g, int slot, int restarts)
{
    struct wd_deploy *d = g->d;
    struct wd_replica *r = xzalloc(sizeof *r);
    r->d = d;
    r->g = g;
    r->slot = slot;
    r->restarts = restarts;
    r->id = wd_deploy_new_id();
    r->gen = ++d->next_gen;
    r->state = WD_R_STARTING;
    r->started_ms = wd_now_ms();
    g->replicas[slot] = r;
    return r;
}

struct wd_replica *wd_group_add_replica(struct wd_group *g)
{
    int slot = 0;
    while (slot < g->nreplicas && g->replicas[slot])
        slot++;
    if (slot == g->nreplicas) {
        g->replicas = xrealloc(g->replicas, (size_t)(g->nreplicas + 1) * sizeof *g->replicas);
        g->replicas[g->nreplicas++] = NULL;
    }
    g->active = true;
    return new_replica(g, slot, 0);
}

static void launch_replica(struct wd_group *g, int slot, int restarts, const char *last_exit)
{
    struct wd_deploy *d = g->d;
    if (d->stopping)
        return;
    struct wd_replica *r = new_replica(g, slot, restarts);
    r->last_exit = last_exit ? xstrdup(last_exit) : NULL;
    autoerr struct wd_error *err = NULL;
    if (d->rt->launch(d, r, &err) < 0) {
        /* forget the replica first, so the stop this causes sees nothing left to wait for */
        g->replicas[slot] = NULL;
        if (r->rt && d->rt->release)
            d->rt->release(d, r);
        free_replica(r);
        wd_deploy_fail(d, "group %s: %s", g->short_name, err->msg);
    }
}

/* ---------- scale (issue 11) ---------- */
#define RETIRE_DRAIN_MS 2000 /* a retired replica's calls in flight finish meanwhile */

static void retire_stop(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_replica *r = arg;
    r->retire_timer = NULL;
    r->d->rt->stop(r->d, r, false);
}

/* Out of routing and the listeners now (new calls and connections go elsewhere), stopped after
 * the drain; its exit is not restarted (wd_replica_exited). */
static void retire(struct wd_replica *r)
{
    struct wd_deploy *d = r->d;
    r->retiring = true;
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_proxy_remove_backends(d->listeners[i].proxy, r);
    if (r->state == WD_R_READY)
        publish_group(r->g);
    wd_info("group %s replica %d retiring", r->g->short_name, r->slot);
    r->retire_timer = wd_timer_add(d->loop, r->state == WD_R_READY ? RETIRE_DRAIN_MS : 0,
                                   retire_stop, r);
}

int wd_group_scale(struct wd_group *g, int n, struct wd_error **err)
{
    struct wd_deploy *d = g->d;
    if (d->rt->external)
        return wd_err(err, ENOTSUP, "the %s runtime scales with its orchestrator, not with us",
                      d->rt->name);
    if (n < 1 || n > WD_CONFIG_MAX_REPLICAS)
        return wd_err(err, EINVAL, "group %s: %d replicas is out of range (1-%d)", g->short_name,
                      n, WD_CONFIG_MAX_REPLICAS);
    if (d->stopping)
        return wd_err(err, ESHUTDOWN, "%s is stopping", d->app);
    int old = g->want;
    g->want = n;
    if (n > g->nreplicas) {
        g->replicas = xrealloc(g->replicas, (size_t)n * sizeof *g->replicas);
        for (int i = g->nreplicas; i < n; i++)
            g->replicas[i] = NULL;
        g->nreplicas = n;
    }
    wd_deploy_event(d, "info", "group %s scaled from %d to %d replica%s", g->short_name, old, n,
                    n == 1 ? "" : "s");
    for (int i = 0; i < g->nreplicas; i++) {
        struct wd_replica *r = g->replicas[i];
        if (i >= n && r && !r->retiring)
            retire(r);
        else if (i < n && r == NULL && g->active)
            launch_replica(g, i, 0, NULL); /* a retiring one in the slot comes back at its exit */
    }
    write_status(d);
    return 0;
}

struct restart {
    struct wd_group *g;
    int slot;
    int restarts;
    char *how;
};

static void do_restart(struct wd_timer *t, void *arg)
{
    (void)t;
    struct restart *rs = arg;
    struct wd_group *g = rs->g;
    if (!g->d->stopping && g->replicas[rs->slot] == NULL && rs->slot < g->want)
        launch_replica(g, rs->slot, rs->restarts, rs->how);
    free(rs->how);
    free(rs);
}

static void begin_stop(struct wd_deploy *d);

void wd_replica_exited(struct wd_replica *r, const char *how, int code)
{
    struct wd_deploy *d = r->d;
    struct wd_group *g = r->g;
    bool was_ready = r->state == WD_R_READY;
    r->state = WD_R_DEAD;
    wd_timer_cancel(r->health_timer);
    r->health_timer = NULL;
    wd_timer_cancel(r->retire_timer);
    r->retire_timer = NULL;
    wd_operate_replica_gone(d, r);
    wd_conn_flush_input(r->ctl); /* a pipe stream carries the logs: its last words */
    drop_conn(d, r->ctl, "weavelet exited");
    drop_conn(d, r->dep, "weavelet exited");
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_proxy_remove_backends(d->listeners[i].proxy, r);
    unsubscribe(d, r);
    if (g->replicas[r->slot] == r)
        g->replicas[r->slot] = NULL;
    if (was_ready && !d->stopping)
        publish_group(g);
    int restarts = r->restarts;
    int64_t ran_ms = wd_now_ms() - r->started_ms;
    int slot = r->slot;
    bool retired = r->retiring;
    char idshort[9];
    snprintf(idshort, sizeof idshort, "%.8s", r->id);
    if (d->rt->release)
        d->rt->release(d, r);
    free_replica(r);
    if (retired && !d->stopping) {
        wd_info("group %s replica %d (weavelet %s) retired", g->short_name, slot, idshort);
        write_status(d);
        if (slot < g->want && g->replicas[slot] == NULL) /* scaled up again meanwhile */
            launch_replica(g, slot, 0, NULL);
        return;
    }

    if (d->stopping) {
        check_all_gone(d);
        return;
    }
    if (wd_rollout_pending(d)) { /* a new version that crashes is not rolled out */
        wd_rollout_replica_exited(d, g->short_name, how);
        if (d->stopping)
            return;
    }
    if (g->has_main && code == 0) {
        wd_termout_printf(d->terr, "weaver-docker: the app's main function returned; stopping\n");
        begin_stop(d); /* with the kill fallback after the grace period */
        return;
    }
    if (slot >= g->want) { /* scaled away while it was dying: no restart */
        wd_deploy_event(d, "warn", "group %s replica %d (weavelet %s) %s", g->short_name, slot,
                        idshort, how);
        return;
    }
    if (d->rt->external) { /* its orchestrator restarts it; it registers again */
        wd_deploy_event(d, "warn", "group %s replica %d (weavelet %s) %s", g->short_name, slot,
                        idshort, how);
        return;
    }
    if (ran_ms > STABLE_MS)
        restarts = 0;
    int64_t delay = d->restart_min_ms;
    for (int i = 0; i < restarts && delay < d->restart_max_ms; i++)
        delay *= 2;
    if (delay > d->restart_max_ms)
        delay = d->restart_max_ms;
    wd_deploy_event(d, "warn", "group %s replica %d (weavelet %s) %s; restarting in %lld ms (restart #%d)",
                    g->short_name, slot, idshort, how, (long long)delay, restarts + 1);
    struct restart *rs = xzalloc(sizeof *rs);
    rs->g = g;
    rs->slot = slot;
    rs->restarts = restarts + 1;
    rs->how = xstrdup(how);
    wd_timer_add(d->loop, delay, do_restart, rs);
}

int wd_restart_backoff_parse(const char *s, int64_t *min_ms, int64_t *max_ms,
                              struct wd_error **err)
{
    *min_ms = RESTART_MIN_MS;
    *max_ms = RESTART_MAX_MS;
    if (s == NULL || *s == 0)
        return 0;
    long long v[2];
    const char *p = s;
    for (int i = 0; i < 2; i++) {
        char *end = NULL;
        errno = 0;
        if (*p < '0' || *p > '9') /* strtoll would take a sign or leading blanks */
            goto bad;
        v[i] = strtoll(p, &end, 10);
        if (errno || end == p || *end != (i == 0 ? ',' : 0))
            goto bad;
        p = end + 1;
    }
    if (v[0] < 1 || v[0] > v[1] || v[1] > RESTART_LIMIT_MS)
        goto bad;
    *min_ms = v[0];
    *max_ms = v[1];
    return 0;
bad:
    return wd_err(err, EINVAL,
                  "WEAVER_DOCKER_RESTART_BACKOFF_MS=\"%s\": want MIN,MAX in milliseconds, "
                  "1 <= MIN <= MAX <= %d (the first restart's delay, doubling up to MAX; "
                  "default %d,%d)",
                  s, RESTART_LIMIT_MS, RESTART_MIN_MS, RESTART_MAX_MS);
}

/* ---------- lifecycle ---------- */

static size_t live_replicas(struct wd_deploy *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->ngroups; i++)
        for (int j = 0; j < d->groups[i]->nreplicas; j++)
            if (d->groups[i]->replicas[j])
                n++;
    return n;
}

static void check_all_gone(struct wd_deploy *d)
{
    if (d->stopping && live_replicas(d) == 0)
        wd_loop_stop(d->loop);
}

/* A kill the runtime never confirms (engine paused or gone) must not hang the stop: after
 * ABANDON_MS the replica is taken for gone and its container left to the final clean-up. */
static void abandon_all(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_deploy *d = arg;
    d->kill_timer = NULL;
    size_t n = live_replicas(d);
    if (n == 0)
        return;
    wd_warn("%zu weavelet%s did not confirm %s stop within %d s of the kill; not waiting", n,
            n == 1 ? "" : "s", n == 1 ? "its" : "their", ABANDON_MS / 1000);
    for (size_t i = 0; i < d->ngroups; i++)
        for (int j = 0; j < d->groups[i]->nreplicas; j++)
            if (d->groups[i]->replicas[j])
                wd_replica_exited(d->groups[i]->replicas[j], "did not confirm its stop", -1);
}

/* Kill every weavelet: the grace period is over (@grace_over), or a second Ctrl-C. */
static void kill_now(struct wd_deploy *d, bool grace_over)
{
    if (grace_over) {
        if (live_replicas(d) > 0)
            wd_warn("weavelets did not stop within %d s; killing them", STOP_GRACE_MS / 1000);
    } else { /* a second Ctrl-C: the grace timer goes, the abandon timer replaces it */
        wd_timer_cancel(d->kill_timer);
        d->kill_timer = NULL;
        if (live_replicas(d) > 0)
            wd_termout_printf(d->terr, "weaver-docker: killing the weavelets now\n");
    }
    for (size_t i = 0; i < d->ngroups; i++)
        for (int j = 0; j < d->groups[i]->nreplicas; j++)
            if (d->groups[i]->replicas[j])
                d->rt->stop(d, d->groups[i]->replicas[j], true);
    if (d->kill_timer == NULL)
        d->kill_timer = wd_timer_add(d->loop, ABANDON_MS, abandon_all, d);
}

/* The grace timer (the loop frees a timer before its callback: @t is NULL, never cancel it). */
static void kill_all(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_deploy *d = arg;
    d->kill_timer = NULL;
    kill_now(d, true);
}

static void begin_stop(struct wd_deploy *d)
{
    /* a stop that comes from elsewhere during a SIGTERM drain ends the drain: its next tick
     * would stop us a second time, which means kill_now */
    wd_timer_cancel(d->drain_timer);
    d->drain_timer = NULL;
    if (d->stopping) {
        kill_now(d, false); /* a second Ctrl-C: do not wait */
        return;
    }
    d->stopping = true;
    wd_rollout_stopping(d); /* traffic back to the running version first */
    for (size_t i = 0; i < d->ngroups; i++)
        for (int j = 0; j < d->groups[i]->nreplicas; j++)
            if (d->groups[i]->replicas[j])
                d->rt->stop(d, d->groups[i]->replicas[j], false);
    d->kill_timer = wd_timer_add(d->loop, STOP_GRACE_MS, kill_all, d);
    check_all_gone(d);
}

void wd_deploy_fail(struct wd_deploy *d, const char *fmt, ...)
{
    if (d->fatal == NULL) {
        va_list ap;
        va_start(ap, fmt);
        d->fatal = xvasprintf(fmt, ap);
        va_end(ap);
    }
    begin_stop(d);
}

void wd_deploy_stop(struct wd_deploy *d, const char *why)
{
    if (d->stopping)
        return;
    wd_deploy_event(d, "info", "stopping %s: %s", d->app, why); /* also on the terminal */
    begin_stop(d);
}

static void drain_tick(struct wd_timer *t, void *arg)
{
    (void)t; /* NULL: the loop frees a timer before its callback */
    struct wd_deploy *d = arg;
    d->drain_timer = NULL;
    if (d->stopping)
        return;
    uint64_t acc = 0;
    size_t open = 0;
    for (size_t i = 0; i < d->nlisteners; i++) {
        acc += wd_proxy_accepted(d->listeners[i].proxy);
        open += wd_proxy_nconns(d->listeners[i].proxy);
    }
    d->drain_quiet = acc == d->drain_accepted ? d->drain_quiet + 1 : 0;
    d->drain_accepted = acc;
    int64_t took = wd_now_ms() - d->drain_since_ms;
    bool quiet = d->drain_quiet * WD_DRAIN_TICK_MS >= 1000 && open == 0;
    /* asked last, and only once the rest says "done": it may take a few hundred ms */
    if (quiet && took >= d->opts.drain_on_term_ms && d->opts.drain_hold &&
        d->opts.drain_hold(d, d->opts.drain_hold_arg))
        quiet = false;
    if ((took >= d->opts.drain_on_term_ms && quiet) || took >= WD_DRAIN_MAX_MS) {
        wd_info("drained after %lld ms (%zu connection(s) open)", (long long)took, open);
        begin_stop(d);
        return;
    }
    d->drain_timer = wd_timer_add(d->loop, WD_DRAIN_TICK_MS, drain_tick, d);
}

static void on_signal(int sig, void *arg)
{
    struct wd_deploy *d = arg;
    if (sig == SIGTERM && d->opts.drain_on_term_ms && !d->stopping && d->drain_timer == NULL) {
        wd_info("SIGTERM: serving on while new connections come (at least %u ms), then "
                "stopping %s",
                d->opts.drain_on_term_ms, d->app);
        d->drain_since_ms = wd_now_ms();
        d->drain_quiet = 0;
        d->drain_accepted = 0;
        for (size_t i = 0; i < d->nlisteners; i++)
            d->drain_accepted += wd_proxy_accepted(d->listeners[i].proxy);
        d->drain_timer = wd_timer_add(d->loop, WD_DRAIN_TICK_MS, drain_tick, d);
        return;
    }
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
        wd_timer_cancel(d->drain_timer);
        d->drain_timer = NULL;
        if (!d->stopping)
            wd_termout_printf(d->terr, "weaver-docker: stopping %s (%s again to kill at once)\n", d->app,
                    sig == SIGINT ? "Ctrl-C" : "the signal");
        begin_stop(d);
        return;
    }
    if (d->rt->on_signal)
        d->rt->on_signal(d, sig);
}

static int open_listener(struct wd_deploy *d, const char *name, const char *component,
                         struct wd_error **err)
{
    const char *addr = "localhost:0";
    for (size_t i = 0; i < d->cfg->nlisteners; i++)
        if (strcmp(d->cfg->listeners[i].name, name) == 0)
            addr = d->cfg->listeners[i].address;
    if (d->opts.rollout) /* the running version holds the address; ours comes at the handover */
        addr = "127.0.0.1:0";
    struct wd_proxy *p = NULL;
    int r = wd_proxy_new(d->loop, name, addr, &p, err);
    if (r < 0)
        return r;
    d->listeners = xrealloc(d->listeners, (d->nlisteners + 1) * sizeof *d->listeners);
    struct wd_listener *l = &d->listeners[d->nlisteners++];
    memset(l, 0, sizeof *l);
    l->name = xstrdup(name);
    l->component = xstrdup(component ? component : "");
    l->proxy = p;
    return 0;
}

static void free_deploy(struct wd_deploy *d)
{
    wd_operate_stop(d); /* a run that failed early */
    wd_rollout_free(d);
    if (d->logworker) { /* a run that failed early */
        wd_worker_free(d->logworker);
        d->logworker = NULL;
        wd_loop_drain(d->loop);
    }
    if (d->own_term) {
        wd_termout_close(d->tout, WD_TERM_CLOSE_MS);
        wd_termout_close(d->terr, WD_TERM_CLOSE_MS);
    }
    for (size_t i = 0; i < d->nlisteners; i++) {
        wd_proxy_free(d->listeners[i].proxy);
        free(d->listeners[i].name);
        free(d->listeners[i].component);
    }
    free(d->listeners);
    for (size_t i = 0; i < d->ngroups; i++) {
        struct wd_group *g = d->groups[i];
        free(g->replicas);
        free(g->comps);
        free(g->name);
        free(g->short_name);
        free(g->slug);
        wd_mtls_cert_free(g->cert);
        free(g);
    }
    free(d->groups);
    for (size_t i = 0; i < d->ncomps; i++) {
        free(d->comps[i]->subs);
        free(d->comps[i]->name);
        free(d->comps[i]);
    }
    free(d->comps);
    if (d->logfmt)
        wd_logfmt_free(d->logfmt);
    if (d->plainfmt)
        wd_logfmt_free(d->plainfmt);
    if (d->traces)
        fclose(d->traces);
    if (d->logstore)
        fclose(d->logstore);
    free(d->deployment_id);
    free(d->app);
    free(d->fatal);
    wd_mtls_free(d->mtls);
    if (d->loop)
        wd_loop_free(d->loop);
}

/* Start early: every group the binary's call graph reaches from Main will be activated soon;
 * launching their replicas at once, in parallel, takes their start time off the critical path
 * (a container start costs ~250 ms). Starting Main first and the rest once it is ready was
 * measured slower (1.35-1.39 s against 1.06-1.18 s to the first answer of the shop app):
 * Main's listener serves only once the components it references are ready. Components are
 * still constructed only when first activated, as weaver multi does. */
static void start_reachable(struct wd_deploy *d)
{
    if (d->started_reachable)
        return;
    d->started_reachable = true;
    size_t nreach = 0;
    const char **reach = xcalloc(d->ncomps + 1, sizeof *reach);
    reach[nreach++] = WD_MAIN_COMPONENT;
    for (size_t k = 0; k < nreach; k++)
        for (size_t e = 0; e < d->bin->nedges; e++) {
            if (strcmp(d->bin->edges[e].src, reach[k]) != 0)
                continue;
            bool seen = false;
            for (size_t q = 0; q < nreach && !seen; q++)
                seen = strcmp(reach[q], d->bin->edges[e].dst) == 0;
            if (!seen && nreach < d->ncomps)
                reach[nreach++] = d->bin->edges[e].dst;
        }
    for (size_t k = 1; k < nreach; k++) {
        struct wd_component *c = wd_deploy_comp(d, reach[k]);
        if (c)
            group_activate(c->group);
    }
    free(reach);
}

/* The status file (opts.status_path): this deployment as `ps` shows it, rewritten when it
 * changes (checked every second and when the loop ends). */
#define STATUS_EVERY_MS 1000

cJSON *wd_deploy_status_json(struct wd_deploy *d)
{
    cJSON *j = wd_json_new_object();
    wd_json_add_str(j, "app", d->app);
    wd_json_add_str(j, "deployment", d->deployment_id);
    wd_json_add_str(j, "runtime", d->rt->name);
    cJSON_AddNumberToObject(j, "pid", (double)getpid());
    cJSON_AddNumberToObject(j, "pid_start", (double)wd_proc_start_ticks((long)getpid()));
    cJSON_AddNumberToObject(j, "started", (double)d->started_s);
    wd_json_add_str(j, "log", d->opts.log_path ? d->opts.log_path : "");
    wd_json_add_str(j, "version", d->opts.version ? d->opts.version : "");
    cJSON *ro = wd_rollout_json(d);
    if (ro)
        cJSON_AddItemToObject(j, "rollout", ro);
    cJSON *jl = wd_json_add_object(j, "listeners"); /* during a rollout, where they will be */
    for (size_t i = 0; i < d->nlisteners; i++)
        wd_json_add_str(jl, d->listeners[i].name,
                        wd_rollout_public_address(d, d->listeners[i].name,
                                                  wd_proxy_address(d->listeners[i].proxy)));
    cJSON *jr = wd_json_add_array(j, "replicas");
    for (size_t i = 0; i < d->ngroups; i++)
        for (int k = 0; k < d->groups[i]->nreplicas; k++) {
            const struct wd_replica *r = d->groups[i]->replicas[k];
            if (r == NULL)
                continue;
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(jr, x);
            wd_json_add_str(x, "group", d->groups[i]->short_name);
            cJSON_AddNumberToObject(x, "replica", k);
            long pid = d->rt->pid ? d->rt->pid(d, d->groups[i]->replicas[k]) : 0;
            cJSON_AddNumberToObject(x, "pid", (double)pid);
            wd_json_add_str(x, "state", r->retiring                 ? "retiring"
                                        : r->state == WD_R_READY    ? "running"
                                        : r->state == WD_R_STARTING ? "starting"
                                                                    : "exited");
            wd_json_add_str(x, "health", r->health == RUNTIME__HEALTH_STATUS__HEALTHY ? "healthy"
                                         : r->health == RUNTIME__HEALTH_STATUS__UNHEALTHY
                                             ? "unhealthy"
                                             : "starting");
            cJSON_AddNumberToObject(x, "restarts", r->restarts);
            wd_json_add_str(x, "weavelet", r->id ? r->id : "");
            wd_json_add_str(x, "last_exit", r->last_exit ? r->last_exit : "");
            if (r->dial_addr) /* where the other weavelets call it */
                wd_json_add_str(x, "address", r->dial_addr);
            if (r->retiring)
                cJSON_AddBoolToObject(x, "retiring", true);
        }
    cJSON *jg = wd_json_add_array(j, "groups");
    for (size_t i = 0; i < d->ngroups; i++) {
        const struct wd_group *g = d->groups[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(jg, x);
        wd_json_add_str(x, "name", g->name);
        wd_json_add_str(x, "short", g->short_name);
        cJSON_AddNumberToObject(x, "want", g->want);
        cJSON_AddBoolToObject(x, "active", g->active);
    }
    return j;
}

static void write_status(struct wd_deploy *d)
{
    if (d->opts.status_path == NULL)
        return;
    autojson cJSON *j = wd_deploy_status_json(d);
    char *text = wd_json_print(j);
    if (d->status_last && strcmp(text, d->status_last) == 0) {
        free(text);
        return;
    }
    autoerr struct wd_error *e = NULL;
    if (wd_write_file_atomic(d->opts.status_path, text, strlen(text), &e) < 0) {
        wd_warn("status file: %s", e->msg);
        free(text);
        return;
    }
    free(d->status_last);
    d->status_last = text;
}

static void status_tick(struct wd_timer *t, void *arg)
{
    (void)t;
    struct wd_deploy *d = arg;
    write_status(d);
    d->status_timer = wd_timer_add(d->loop, STATUS_EVERY_MS, status_tick, d);
}

static int run(struct wd_deploy *d, struct wd_error **err)
{
    const struct wd_deploy_opts *opts = &d->opts;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
    int r = wd_restart_backoff_parse(getenv("WEAVER_DOCKER_RESTART_BACKOFF_MS"),
                                     &d->restart_min_ms, &d->restart_max_ms, err);
    if (r < 0)
        return r;
    if ((r = wd_loop_new(sigs, WD_ARRAY_LEN(sigs), on_signal, d, &d->loop, err)) < 0)
        return r;
    if (getenv("WEAVER_DOCKER_TRACE"))
        wd_conn_set_trace(true);
    d->logfmt = wd_logfmt_new(opts->color);
    if (opts->traces_path && (d->traces = fopen(opts->traces_path, "ae")) == NULL)
        return wd_err_sys(err, errno, "open traces file %s", opts->traces_path);
    d->plainfmt = wd_logfmt_new(false);
    d->tout = opts->term_out;
    d->terr = opts->term_err;
    if (d->tout == NULL || d->terr == NULL) {
        d->own_term = true;
        d->tout = wd_termout_new(fileno(opts->out), WD_TERM_QUEUE_BYTES, "");
        d->terr = wd_termout_new(2, WD_TERM_QUEUE_BYTES, "");
    }
    if ((d->logworker = wd_deploy_log_worker_new(d)) == NULL)
        return wd_err_sys(err, errno, "start the log thread");
    wd_deploy_build_groups(d);
    if (d->cfg->mtls) {
        /* the weavelets of an external runtime (compose) are started by someone else, with
         * arguments we cannot vouch for: mtls is ours to run only where we launch them */
        if (d->rt->external)
            return wd_err(err, ENOTSUP, "[docker] mtls is not supported by the %s runtime",
                          d->rt->name);
        autofree char *label = xasprintf("%s %.8s", d->app, d->deployment_id);
        if ((r = wd_mtls_new(label, &d->mtls, err)) < 0)
            return r;
    }
    /* Bind every listener the binary declares before starting anything, so a taken port is
     * reported at once and nothing is left behind. */
    for (size_t i = 0; i < d->bin->nlisteners; i++)
        for (size_t j = 0; j < d->bin->listeners[i].names.n; j++)
            if ((r = open_listener(d, d->bin->listeners[i].names.v[j],
                                   d->bin->listeners[i].component, err)) < 0)
                return r;
    wd_rollout_start(d); /* before on_start: the labels name the addresses it will take over */
    if (opts->on_start && (r = opts->on_start(d, opts->on_start_arg, err)) < 0)
        return r;
    if ((r = d->rt->init(d, err)) < 0) {
        if (d->rt->shutdown)
            d->rt->shutdown(d);
        return r;
    }
    if ((r = wd_operate_start(d, err)) < 0) {
        if (d->rt->shutdown)
            d->rt->shutdown(d);
        return r;
    }
    wd_termout_printf(d->terr,
                      "weaver-docker: deploying %s (deployment %.8s, %zu group%s, runtime %s%s)\n",
                      d->app, d->deployment_id, d->ngroups, d->ngroups == 1 ? "" : "s",
                      d->rt->name, d->mtls ? ", mtls" : "");
    for (size_t i = 0; i < d->nlisteners; i++) {
        const char *bound = wd_proxy_address(d->listeners[i].proxy);
        const char *pub = wd_rollout_public_address(d, d->listeners[i].name, bound);
        if (strcmp(pub, bound) != 0) /* a rollout: the running version holds it meanwhile */
            wd_termout_printf(d->terr,
                              "weaver-docker: listener \"%s\" at %s once the rollout is done "
                              "(meanwhile %s)\n",
                              d->listeners[i].name, pub, bound);
        else
            wd_termout_printf(d->terr, "weaver-docker: listener \"%s\" at %s\n",
                              d->listeners[i].name, bound);
    }
    struct wd_component *main_c = wd_deploy_comp(d, WD_MAIN_COMPONENT);
    main_c->started = true;
    group_activate(main_c->group);
    start_reachable(d);
    d->started_s = (int64_t)time(NULL);
    if (d->opts.status_path) {
        write_status(d);
        d->status_timer = wd_timer_add(d->loop, STATUS_EVERY_MS, status_tick, d);
    }
    r = wd_loop_run(d->loop, err);
    wd_operate_stop(d);
    wd_timer_cancel(d->kill_timer);
    wd_timer_cancel(d->drain_timer);
    d->drain_timer = NULL;
    d->kill_timer = NULL;
    wd_timer_cancel(d->status_timer);
    d->status_timer = NULL;
    if (d->opts.status_path)
        unlink(d->opts.status_path);
    free(d->status_last);
    d->status_last = NULL;
    if (d->rt->shutdown)
        d->rt->shutdown(d);
    wd_loop_drain(d->loop); /* deferred closes, the runtime's last results */
    wd_worker_free(d->logworker); /* the last batches written, their answers posted */
    d->logworker = NULL;
    wd_loop_drain(d->loop);
    wd_rollout_free(d); /* after the log: a failed rollout shows its last lines */
    if (r == 0 && d->fatal)
        r = wd_err(err, EIO, "%s", d->fatal);
    if (r == 0)
        wd_termout_printf(d->terr, "weaver-docker: %s stopped\n", d->app);
    return r;
}

int wd_deploy_run(struct wd_config *cfg, struct wd_binary_info *bin,
                  const struct wd_deploy_opts *opts, struct wd_error **err)
{
    struct wd_deploy d = {0};
    d.cfg = cfg;
    d.bin = bin;
    d.opts = *opts;
    if (d.opts.out == NULL)
        d.opts.out = stdout;
    d.rt = opts->rt ? opts->rt : &wd_runtime_process;
    d.app = xstrdup(cfg->name);
    d.deployment_id = opts->deployment_id ? xstrdup(opts->deployment_id) : wd_deploy_new_id();
    int r = run(&d, err);
    free_deploy(&d);
    return r;
}
