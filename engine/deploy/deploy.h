/* engine/deploy/deploy.h - the envelope brain: colocation groups and replicas, activation and
 * routing, listeners, logs, health, restarts. Runtimes (process, docker) only start and stop
 * weavelets and hand us their control connections; everything else is shared. Protocol reference:
 * ../shared/docs/weaver-protocol.md §1.4, §3, §7. */
#ifndef WD_DEPLOY_H
#define WD_DEPLOY_H

#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"
#include "engine/weaver/conn.h"
#include "engine/weaver/logfmt.h"
#include "engine/base/loop.h"

#include <stdio.h>
#include <sys/types.h>

struct wd_deploy;
struct wd_group;
struct wd_replica;
struct wd_proxy;
struct wd_mtls;
struct wd_mtls_cert;

enum wd_replica_state { WD_R_STARTING, WD_R_READY, WD_R_DEAD };

struct wd_component {
    char *name;
    struct wd_group *group;
    bool started; /* listed in its group's UpdateComponents */
    bool routed;
    uint64_t assign_version;
    struct wd_replica **subs; /* replicas that route to it remotely */
    size_t nsubs;
};

struct wd_group {
    struct wd_deploy *d;
    size_t idx;
    char *name;  /* first component's full name */
    char *short_name; /* "shop.Cart": last two path elements */
    char *slug;  /* "shop-cart": for container and file names */
    struct wd_component **comps;
    size_t ncomps;
    bool has_main;
    bool active; /* replicas have been launched */
    int nreplicas;
    struct wd_replica **replicas; /* nreplicas slots, NULL while restarting */
    int want; /* replicas asked for (config, then `scale`): slots >= want retire or stay empty */
    struct wd_mtls_cert *cert;    /* mtls: the group's key and certificate, issued when first
                                     asked for (kept for its restarted replicas); else NULL */
};

struct wd_replica {
    struct wd_deploy *d;
    struct wd_group *g;
    int slot;
    uint64_t gen; /* unique per replica of this deployment */
    char *id;     /* weavelet id */
    char *dial_addr;
    enum wd_replica_state state;
    struct wd_conn *ctl; /* weaveletControl: we are the client */
    struct wd_conn *dep; /* deployerControl: we serve */
    char **asked;        /* components this weavelet activated */
    size_t nasked;
    /* routing updates per component: one in flight at a time, since the weavelet applies each
     * UpdateRoutingInfo call in a goroutine of its own (two in flight may land in either order:
     * an empty replica list after the full one left Main calling nobody) */
    struct wd_route_out {
        struct wd_component *c;
        bool inflight, dirty;
    } *routes;
    size_t nroutes;
    int restarts;
    char *last_exit; /* how the replica before it in this slot ended ("was killed: out of
                        memory"), NULL for a first start */
    int64_t started_ms;
    int health; /* runtime.HealthStatus */
    char *broken; /* "COMPONENT: ERROR" when a component failed to construct in this weavelet:
                     weaver never retries it, so the replica reports unhealthy until replaced */
    struct wd_timer *health_timer;
    bool retiring;               /* scaled away: out of routing and listeners, stopping soon */
    struct wd_timer *retire_timer;
    bool metrics_inflight;       /* a GetMetrics call is out (engine/deploy/operate.c) */
    struct wd_profile_job *profile; /* a GetProfile call of that job is out (engine/deploy/operate.c) */
    void *rt; /* runtime private */
};

struct wd_runtime_ops {
    const char *name;
    int (*init)(struct wd_deploy *d, struct wd_error **err);
    /* Start a weavelet for r. The runtime later calls wd_replica_attach_* with connected fds,
     * wd_replica_output for stdout/stderr lines, and exactly once wd_replica_exited. */
    int (*launch)(struct wd_deploy *d, struct wd_replica *r, struct wd_error **err);
    /* Ask r to stop (SIGTERM), or kill it (force). */
    void (*stop)(struct wd_deploy *d, struct wd_replica *r, bool force);
    /* The address a weavelet should listen on for a listener (GetListenerAddress). */
    const char *(*listen_address)(struct wd_deploy *d, struct wd_replica *r);
    /* Map the address a weavelet bound (ExportListener) to one we can connect to. Caller frees. */
    char *(*backend_address)(struct wd_deploy *d, struct wd_replica *r, const char *bound);
    void (*release)(struct wd_deploy *d, struct wd_replica *r); /* free r->rt after exit */
    void (*shutdown)(struct wd_deploy *d);                       /* after the last replica */
    void (*on_signal)(struct wd_deploy *d, int sig);             /* e.g. SIGCHLD */
    void (*dep_lost)(struct wd_deploy *d, struct wd_replica *r); /* its deployerControl closed */
    void (*ready)(struct wd_deploy *d, struct wd_replica *r);    /* InitWeavelet succeeded */
    /* Health as the weavelet reports it (runtime.HealthStatus), after each poll. */
    void (*health)(struct wd_deploy *d, struct wd_replica *r, int status);
    long (*pid)(struct wd_deploy *d, struct wd_replica *r); /* its process, for the status */
    /* Replicas are started by someone else (compose, swarm) and register themselves with
     * wd_group_add_replica; the core never launches or restarts them. */
    bool external;
};

extern const struct wd_runtime_ops wd_runtime_process;
extern const struct wd_runtime_ops wd_runtime_docker; /* engine/deploy/rt_docker.c */
struct wd_docker_opts;

#define WD_DRAIN_MAX_MS 60000
#define WD_DRAIN_TICK_MS 250

struct wd_deploy_opts {
    const struct wd_runtime_ops *rt; /* NULL = wd_runtime_process */
    bool color;
    bool show_system;        /* print weaver's own system log entries too */
    const char *traces_path; /* append trace spans as JSON lines, or NULL */
    FILE *out;               /* where pretty logs go (stdout) */
    const char *log_path;    /* also append every entry as a JSON line here (or NULL) */
    int ready_fd;            /* write "ready\n" here once main and all listeners serve (-1) */
    const struct wd_docker_opts *docker; /* runtime "docker" */
    const char *deployment_id;           /* NULL: a new one (wd_deploy_new_id) */
    /* called once the loop runs and listeners are bound: e.g. to publish them as labels */
    int (*on_start)(struct wd_deploy *d, void *arg, struct wd_error **err);
    void *on_start_arg;
    /* where `ps` and `down` find a deployment the engine does not know of (process runtime):
     * a JSON file rewritten when replicas change, removed at the end (or NULL) */
    const char *status_path;
    /* where the pretty logs and our own lines go: never blocking the loop (termout.h); NULL:
     * made here for `out` and stderr */
    struct wd_termout *term_out, *term_err;
    /* the control API's unix socket (engine/deploy/operate.h, docs/design/control-api.md), or NULL */
    const char *control_path;
    /* what this deployment runs, to tell a changed app from the same one ("sha256:..."), in
     * the status; or NULL */
    const char *version;
    /* take over from this running version (engine/deploy/rollout.h): listeners start on
     * loopback ports and `ready` waits for the rollout; or NULL */
    const struct wd_rollout_from *rollout;
    /* after a SIGTERM, go on serving at least this long, then until no new connection came for
     * a second and none is open (at most WD_DRAIN_MAX_MS): the compose manager under a Swarm
     * rolling update, which the front leaves once the next version serves; 0 = stop at once */
    unsigned drain_on_term_ms;
    /* ... and while this says so (the compose manager: no newer manager serves yet, so the
     * front still sends here); NULL = never */
    bool (*drain_hold)(struct wd_deploy *d, void *arg);
    void *drain_hold_arg;
};

struct logjob;
struct wd_worker;
struct wd_operate;
struct wd_rollout;
struct wd_rollout_from;
struct wd_profile_job;
struct ProtobufCMessage;
struct cJSON;

struct wd_listener {
    char *name;
    char *component;
    struct wd_proxy *proxy;
    bool announced;
};

struct wd_deploy {
    struct wd_loop *loop;
    struct wd_config *cfg;
    struct wd_binary_info *bin;
    struct wd_deploy_opts opts;
    const struct wd_runtime_ops *rt;
    void *rt_state;
    char *deployment_id;
    char *app;
    struct wd_group **groups;
    size_t ngroups;
    struct wd_component **comps;
    size_t ncomps;
    struct wd_listener *listeners;
    size_t nlisteners;
    struct wd_logfmt *logfmt;
    FILE *traces;
    uint64_t nspans;
    uint64_t next_gen;
    FILE *logstore;
    bool logstore_failed;
    struct wd_logfmt *plainfmt; /* for lines sent to `up -d` */
    bool announced_ready;
    bool started_reachable;
    bool stopping;
    int exit_code;
    char *fatal; /* set when the deployment must end with an error */
    struct wd_timer *kill_timer;
    struct wd_timer *drain_timer; /* opts.drain_on_term_ms */
    int64_t drain_since_ms;
    uint64_t drain_accepted; /* listener connections at the last drain tick */
    int drain_quiet;         /* ticks without a new one */
    struct wd_timer *status_timer;
    char *status_last; /* what the status file holds */
    int64_t started_s;
    struct wd_termout *tout, *terr; /* the opts' or our own */
    bool own_term;
    /* the log path (issue 16): batches are decoded, formatted and written on a thread of its
     * own; logfmt, plainfmt and logstore belong to it while it runs */
    struct wd_worker *logworker;
    struct logjob *logjobs; /* submitted, their done not run yet (loop thread only) */
    struct wd_operate *op; /* the control API, metrics (engine/deploy/operate.h), or NULL */
    struct wd_rollout *ro; /* a rollout this deployment takes part in (rollout.h), or NULL */
    struct wd_mtls *mtls; /* [docker] mtls: the deployment's CA (only in our memory), else NULL */
    int64_t restart_min_ms, restart_max_ms; /* a dead replica's restart delay, doubling */
};

/* A new random id (UUID v4 text), as weaver multi uses for deployments and weavelets.
 * Caller frees. */
char *wd_deploy_new_id(void);

/* Run the app in the foreground until SIGINT/SIGTERM (returns 0) or a fatal error. */
int wd_deploy_run(struct wd_config *cfg, struct wd_binary_info *bin,
                  const struct wd_deploy_opts *opts, struct wd_error **err);

/* --- for runtimes --- */
/* The base64 WEAVELET_ARGS value for r. Caller frees. */
char *wd_replica_weavelet_args(struct wd_replica *r, const char *control_socket,
                               const char *redirect, const char *internal_address);
/* External runtimes: a new replica of g registering itself (in a free slot). */
struct wd_replica *wd_group_add_replica(struct wd_group *g);
/* The group named by its full name, short name ("shop.Cart") or slug ("shop-cart"), or NULL. */
struct wd_group *wd_deploy_find_group(struct wd_deploy *d, const char *name);
void wd_replica_attach_control(struct wd_replica *r, int fd);
void wd_replica_attach_deployer(struct wd_replica *r, int fd);
/* A weavelet of weaver v0.20-v0.22 (wd_binary_pipes): fd is its one control stream, both ways
 * (engine/weaver/pipe.h); the handshake goes out at once, with internal_address
 * ("localhost:0", "NAME:0") as the address its data plane listens on. */
void wd_replica_attach_pipe(struct wd_replica *r, int fd, const char *internal_address);
void wd_replica_output(struct wd_replica *r, const char *stream, const char *line);
/* The weavelet is gone: how (e.g. "exited with status 2") and its exit code (-1 unknown). */
void wd_replica_exited(struct wd_replica *r, const char *how, int code);
/* One of our own events: printed to stderr and stored in the log file (component
 * "deployer"). level: "info", "warn", "error". */
void wd_deploy_event(struct wd_deploy *d, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The deployment as JSON: app, deployment, runtime, pid, started, log, listeners, replicas
 * (group, replica, pid, state, health, restarts, weavelet, last_exit, retiring) and groups
 * (name, short, want, active). Caller frees (cJSON_Delete). */
struct cJSON *wd_deploy_status_json(struct wd_deploy *d);
/* Call method @m of r's weavelet (weaveletControl) with @msg; fn gets the answer, or an error
 * if the weavelet is not connected. fn is not called if the connection is closed by us (the
 * replica is going): keep nothing of r in arg that outlives r. */
void wd_replica_call(struct wd_replica *r, enum wd_rpc_method m, const struct ProtobufCMessage *msg,
                     wd_call_fn fn, void *arg);
/* wd_group_scale - run @n replicas of g from now on (1..WD_CONFIG_MAX_REPLICAS): new ones start
 * and join routing and listeners when ready; extra ones leave both at once and are stopped
 * after a short drain. Returns 0 or <0 with *err (external runtime, bad n). */
int wd_group_scale(struct wd_group *g, int n, struct wd_error **err);
/* The app serves: write "ready name=addr;..." to opts.ready_fd (`up -d` returns) and say so,
 * once. check_ready does it, or after a rollout, rollout.c. */
void wd_deploy_announce_ready(struct wd_deploy *d);
/* Stop the deployment as SIGTERM does (once), saying @why in the log and on stderr. */
void wd_deploy_stop(struct wd_deploy *d, const char *why);
/* Stop the whole deployment with an error message. */
void wd_deploy_fail(struct wd_deploy *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* wd_restart_backoff_parse - the value of WEAVER_DOCKER_RESTART_BACKOFF_MS, "MIN,MAX" in
 * milliseconds: a replica that dies is restarted after MIN, the delay doubling with each
 * restart in a row up to MAX. @s is borrowed; NULL or "" gives the defaults (100,10000).
 * Returns 0, or -EINVAL with *err set (not two integers, MIN < 1, MIN > MAX, MAX > 1 h). */
int wd_restart_backoff_parse(const char *s, int64_t *min_ms, int64_t *max_ms,
                             struct wd_error **err);

/* Short display name of a component ("shop.Cart"). Caller frees. */
char *wd_component_short(const char *full);
/* Its slug for container, service and file names ("shop-cart"). Caller frees. */
char *wd_component_slug(const char *full);

#endif
