/* engine/docker/docker.h - Docker Engine API client (Docker >= 20.10 and Podman >= 4.3's compat
 * API) over a unix socket. Reference: docs/docker-engine.md.
 *
 * A struct wd_docker is one connection (one libcurl easy handle). It is not thread-safe;
 * wd_docker_clone() makes a cheap copy for another thread (same engine, same negotiated API
 * version, own connection). Every object we create carries WD_LABEL_OWNER plus the extra labels
 * of env WEAVER_DOCKER_LABELS="k=v,k2=v2".
 *
 * Errors follow engine/base/error.h. Engine replies map to errno with wd_docker_status_errno():
 * 404 -ENOENT, 409 -EEXIST, 403 -EACCES, 400 -EINVAL; Podman's 500s are classified by message.
 * Transport: -ENOENT/-EACCES/-ECONNREFUSED (socket), -EPROTO (not an engine / bad reply),
 * -ECONNRESET (engine went away mid-call), -ETIMEDOUT, -EMSGSIZE, -ENOTSUP (engine too old). */
#ifndef WD_ENGINE_DOCKER_H
#define WD_ENGINE_DOCKER_H

#include "engine/base/error.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct wd_docker;

/* Ownership labels (docs/docker-engine.md §6). */
#define WD_LABEL_PREFIX "org.weaver-docker."
#define WD_LABEL_APP WD_LABEL_PREFIX "app"
#define WD_LABEL_DEPLOYMENT WD_LABEL_PREFIX "deployment"
#define WD_LABEL_GROUP WD_LABEL_PREFIX "group"
#define WD_LABEL_REPLICA WD_LABEL_PREFIX "replica"
#define WD_LABEL_ROLE WD_LABEL_PREFIX "role"
#define WD_LABEL_OWNER WD_LABEL_PREFIX "owner" /* value: weaver-docker/<version> */
#define WD_LABELS_ENV "WEAVER_DOCKER_LABELS"

#define WD_DOCKER_API_MIN "1.41"    /* Docker 20.10, Podman 4.2+ compat */
#define WD_DOCKER_API_TESTED "1.41" /* highest version this code was tested against */
#ifndef WD_MAX_STREAM_FRAME
#define WD_MAX_STREAM_FRAME (1u << 20) /* one logs/attach frame */
#endif
#define WD_MAX_JSON_LINE (1u << 20) /* one line of an events/progress stream */

/* Input key/value (borrowed strings). */
struct wd_kv {
    const char *key;
    const char *value;
};
/* Output key/value (owned strings). */
struct wd_label {
    char *key;
    char *value;
};
void wd_labels_free(struct wd_label *l, size_t n);

/* ---- connection ---------------------------------------------------------------------------- */

/* wd_docker_connect - find the engine and negotiate the API version.
 * @host: "unix:///path" (or "/path") from --host, or NULL to use DOCKER_HOST, CONTAINER_HOST,
 * then /var/run/docker.sock, $XDG_RUNTIME_DIR/docker.sock, /run/podman/podman.sock and
 * $XDG_RUNTIME_DIR/podman/podman.sock (the first that answers GET /_ping).
 * Caller owns *out (wd_docker_free). Errors carry one line saying what to do:
 * -ENOENT no engine socket, -EACCES not allowed, -ECONNREFUSED nobody listening, -EPROTO not an
 * engine, -ENOTSUP engine too old, -EINVAL bad host URI or WEAVER_DOCKER_LABELS. */
int wd_docker_connect(const char *host, struct wd_docker **out, struct wd_error **err);
/* wd_docker_clone - a new connection to the same engine for another thread. Caller owns *out. */
struct wd_docker *wd_docker_clone(const struct wd_docker *d);
void wd_docker_free(struct wd_docker *d); /* NULL-safe */
#define autodocker __attribute__((cleanup(wd_docker_freep)))
void wd_docker_freep(struct wd_docker **d);

/* Every later call of @d (and of its clones made afterwards) fails with -ECANCELED as soon as
 * *cancel is set; NULL = never. */
void wd_docker_set_cancel(struct wd_docker *d, const atomic_int *cancel);
/* One call's limit: WEAVER_DOCKER_ENGINE_TIMEOUT seconds (1..3600), default 60. */
long wd_docker_timeout_ms(const struct wd_docker *d);
/* Calls that ran out of time so far, in this process (the engine may still carry them out). */
unsigned wd_docker_timeouts(void);
/* @rc says the engine did not answer (timed out, gone, restarting, or the call was cancelled). */
bool wd_docker_unreachable(int rc);
int wd_docker_parse_timeout(const char *s, long *ms, struct wd_error **err);
const char *wd_docker_socket(const struct wd_docker *d);         /* e.g. /var/run/docker.sock */
const char *wd_docker_source(const struct wd_docker *d);         /* "DOCKER_HOST", "default" ... */
const char *wd_docker_api_version(const struct wd_docker *d);    /* negotiated, e.g. "1.41" */
const char *wd_docker_server_version(const struct wd_docker *d); /* e.g. "20.10.24+dfsg1" */
bool wd_docker_is_podman(const struct wd_docker *d);
/* Extra labels from WEAVER_DOCKER_LABELS plus WD_LABEL_OWNER (borrowed). */
const struct wd_label *wd_docker_extra_labels(const struct wd_docker *d, size_t *n);

/* wd_docker_status_errno - the errno for an engine error reply. @message (may be NULL) is the
 * engine's text, used for Podman, which answers 500 to conflicts (docker-engine.md §2.4).
 * 404 ENOENT, 409 EEXIST, 403 EACCES, 400 EINVAL, 304 0; 500: EADDRINUSE for a taken host
 * port, EEXIST for "already in use/exists", ENOENT for "no such"/"not found", EBUSY for "in
 * use"/"state improper"; otherwise EIO. */
int wd_docker_status_errno(long status, const char *message);

/* wd_docker_request - one API call: @path is after the version prefix ("/containers/json").
 * @body is JSON (or NULL). 2xx and 304 succeed; *reply (may be NULL) gets the parsed JSON body
 * or NULL when empty (caller owns, cJSON_Delete). Other statuses fail with the engine's message
 * verbatim: "<what>: engine 409: <message>". */
int wd_docker_request(struct wd_docker *d, const char *method, const char *path,
                      const struct cJSON *body, struct cJSON **reply, const char *what,
                      struct wd_error **err);

/* ---- networks ------------------------------------------------------------------------------ */

struct wd_network_spec {
    const char *name;
    const struct wd_kv *labels;
    size_t nlabels;
    bool internal;
};
struct wd_network_info {
    char *id;
    char *name;
    char *driver;
    char *subnet;  /* first IPAM config, or NULL */
    char *gateway; /* or NULL */
    bool internal;
    struct wd_label *labels;
    size_t nlabels;
};
void wd_network_info_free(struct wd_network_info *n);

/* Create a user-defined bridge. *id (may be NULL) gets the new ID (caller frees).
 * -EEXIST if the name exists (409, or Podman 500 "network already exists"). */
int wd_docker_network_create(struct wd_docker *d, const struct wd_network_spec *s, char **id,
                             struct wd_error **err);
/* Inspect by name or ID; -ENOENT if absent. Caller frees *out (wd_network_info_free). */
int wd_docker_network_inspect(struct wd_docker *d, const char *name, struct wd_network_info *out,
                              struct wd_error **err);
/* Remove; -ENOENT if absent, -EACCES/-EBUSY while containers run on it. */
int wd_docker_network_remove(struct wd_docker *d, const char *name, struct wd_error **err);
/* Connect a (created or running) container with aliases. */
int wd_docker_network_connect(struct wd_docker *d, const char *network, const char *container,
                              const char *const *aliases, size_t naliases, struct wd_error **err);

/* ---- volumes ------------------------------------------------------------------------------- */

/* Create a local named volume with labels (plus owner and WEAVER_DOCKER_LABELS). An existing
 * volume of that name is no error: *created (may be NULL) says which it was. */
int wd_docker_volume_create(struct wd_docker *d, const char *name, const struct wd_kv *labels,
                            size_t nlabels, bool *created, struct wd_error **err);
/* Remove; -ENOENT if absent, -EBUSY while a container uses it. */
int wd_docker_volume_remove(struct wd_docker *d, const char *name, struct wd_error **err);
/* Names of the volumes carrying every label of @labels ("k=v"); caller frees the vector
 * (wd_strv_free-style: each string, then the array). */
int wd_docker_volume_list(struct wd_docker *d, const char *const *labels, size_t nlabels,
                          char ***names, size_t *n, struct wd_error **err);

/* ---- containers ---------------------------------------------------------------------------- */

struct wd_port_binding {
    uint16_t container_port;
    const char *proto;   /* "tcp" (NULL) or "udp" */
    const char *host_ip; /* NULL/"" = all addresses; "127.0.0.1" for loopback only */
    uint16_t host_port;  /* 0 = a random free port */
};
struct wd_ulimit {
    const char *name; /* "nofile", "nproc" ... */
    int64_t soft;
    int64_t hard;
};
struct wd_healthcheck {
    const char *const *argv; /* exec form (sent as ["CMD", argv...]) */
    size_t argc;
    int64_t interval_ns, timeout_ns, start_period_ns; /* 0 = engine default */
    int retries;                                      /* 0 = engine default */
};
/* HostConfig.Mounts entry */
struct wd_mount {
    bool volume;        /* a named volume (source = its name); else a bind mount */
    const char *source; /* absolute host path, or the volume name */
    const char *target; /* absolute path in the container */
    bool read_only;
};

struct wd_tmpfs {
    const char *path;    /* "/tmp" */
    const char *options; /* "rw,nosuid,nodev,mode=1777,size=64m" (NULL: that default) */
};

struct wd_container_spec {
    const char *name;  /* [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
    const char *image; /* tag or sha256:ID */
    const char *const *entrypoint;
    size_t nentrypoint; /* 0 = the image's */
    const char *const *cmd;
    size_t ncmd; /* 0 = the image's */
    const char *const *env;
    size_t nenv; /* "K=V" */
    const struct wd_kv *labels;
    size_t nlabels;   /* plus WD_LABEL_OWNER and WEAVER_DOCKER_LABELS, added by the client */
    const char *user; /* "uid:gid"; NULL = the image's */
    const char *hostname;
    const char *workdir;
    bool tty;
    bool read_only;         /* read-only rootfs */
    bool cap_drop_all;      /* CapDrop ["ALL"] */
    bool no_new_privileges; /* SecurityOpt no-new-privileges */
    bool init;              /* HostConfig.Init (docker-init / catatonit as PID 1) */
    const struct wd_tmpfs *tmpfs;
    size_t ntmpfs;
    const struct wd_mount *mounts;
    size_t nmounts;
    const char *const *extra_hosts; /* "NAME:ADDRESS"; ADDRESS may be "host-gateway" */
    size_t nextra_hosts;
    const struct wd_ulimit *ulimits;
    size_t nulimits;     /* 0 = nofile and nproc 4096 (Podman in a sandbox needs explicit ones) */
    const char *network; /* NetworkMode and the one EndpointsConfig key */
    const char *const *aliases;
    size_t naliases;
    const struct wd_port_binding *ports;
    size_t nports;
    int64_t memory_bytes; /* 0 = unlimited */
    int64_t nano_cpus;    /* CPUs * 1e9; 0 = unlimited */
    int64_t pids_limit;   /* 0 = unlimited */
    const struct wd_healthcheck *health;
    const char *stop_signal; /* NULL = image default */
    int stop_timeout_s;      /* <= 0 = engine default */
    const char *restart;     /* "no" (NULL), "on-failure", "always", "unless-stopped" */
    int restart_max;         /* for on-failure */
};

/* wd_docker_container_create - POST /containers/create. *id gets the ID (caller frees).
 * -EEXIST name in use, -ENOENT no such image (or network on Podman), -EINVAL bad spec. */
int wd_docker_container_create(struct wd_docker *d, const struct wd_container_spec *s, char **id,
                               struct wd_error **err);
/* Start (304 "already running" is success). Port conflicts surface here as -EADDRINUSE. */
int wd_docker_container_start(struct wd_docker *d, const char *id, struct wd_error **err);
/* Stop: StopSignal, then SIGKILL after @timeout_s (< 0: the container's StopTimeout). */
int wd_docker_container_stop(struct wd_docker *d, const char *id, int timeout_s,
                             struct wd_error **err);
/* Kill with @signal ("SIGTERM", "9"; NULL = SIGKILL). Not running: -EEXIST (409) / -EBUSY. */
int wd_docker_container_kill(struct wd_docker *d, const char *id, const char *signal,
                             struct wd_error **err);
/* Wait until @condition ("not-running" (NULL), "next-exit", "removed"); *exit_code gets the
 * status. No timeout: this blocks while the container runs. */
int wd_docker_container_wait(struct wd_docker *d, const char *id, const char *condition,
                             int64_t *exit_code, struct wd_error **err);
/* Remove (with anonymous volumes). -ENOENT if absent. */
int wd_docker_container_remove(struct wd_docker *d, const char *id, bool force,
                               struct wd_error **err);

struct wd_port {
    uint16_t container_port;
    char proto[8];
    char host_ip[64];
    uint16_t host_port; /* 0 = not published (yet) */
};
struct wd_container_info {
    char *id;
    char *name;   /* without the leading '/' */
    char *image;  /* Config.Image */
    char *status; /* created, running, paused, restarting, removing, exited, dead */
    bool running;
    bool oom_killed;
    bool tty;
    int64_t exit_code;
    int64_t restart_count;
    int64_t pid;
    char *error;  /* State.Error or NULL */
    char *health; /* "", starting, healthy, unhealthy */
    char *ip;     /* address on the requested network (or the first one); NULL when none */
    struct wd_port *ports;
    size_t nports;
    struct wd_label *labels;
    size_t nlabels;
};
void wd_container_info_free(struct wd_container_info *c);
/* Inspect; @network selects which network's IP goes to ->ip (NULL = first). -ENOENT if absent.
 * Caller frees *out with wd_container_info_free. */
int wd_docker_container_inspect(struct wd_docker *d, const char *id, const char *network,
                                struct wd_container_info *out, struct wd_error **err);
/* Host port published for container_port/proto (first binding), or -ENOENT. */
int wd_container_info_host_port(const struct wd_container_info *c, uint16_t container_port,
                                const char *proto, uint16_t *host_port);

struct wd_container_summary {
    char *id;
    char *name; /* first name, without '/' */
    char *image;
    char *state;  /* running, exited ... */
    char *status; /* "Up 3 seconds" */
    struct wd_label *labels;
    size_t nlabels;
};
void wd_container_summaries_free(struct wd_container_summary *s, size_t n);
/* List all containers (running or not) carrying every label in @labels ("k" or "k=v").
 * Caller frees *out with wd_container_summaries_free. */
int wd_docker_container_list(struct wd_docker *d, const char *const *labels, size_t nlabels,
                             struct wd_container_summary **out, size_t *n, struct wd_error **err);

/* Output of logs and attach, demultiplexed: stream 1 stdout, 2 stderr (0 stdin shows as 1). With
 * a TTY everything arrives as stream 1. Return 0 to go on, <0 to stop (that value is returned). */
typedef int (*wd_docker_output_fn)(void *arg, int stream, const uint8_t *data, size_t len);

struct wd_logs_opts {
    bool follow;
    bool no_stdout;
    bool no_stderr;
    bool timestamps;
    int64_t since; /* unix seconds, 0 = beginning */
    int tail;      /* last N lines; <= 0 = all */
    int tty;       /* -1 = ask the engine (inspect), 0 = multiplexed, 1 = raw TTY stream */
};
/* Read the logs; with follow, until the container stops. */
int wd_docker_container_logs(struct wd_docker *d, const char *id, const struct wd_logs_opts *o,
                             wd_docker_output_fn cb, void *arg, struct wd_error **err);
/* Attach to stdout/stderr (with @logs also the history) until the process exits. On a created
 * container it waits for the start. @tty as in wd_logs_opts. */
int wd_docker_container_attach(struct wd_docker *d, const char *id, bool logs, int tty,
                               wd_docker_output_fn cb, void *arg, struct wd_error **err);

/* ---- parallel create+start ------------------------------------------------------------------ */

struct wd_docker_job {
    const struct wd_container_spec *spec; /* borrowed */
    bool start;                           /* start after create */
    /* results */
    char *id;             /* container ID (caller frees), NULL if create failed */
    int rc;               /* 0 or -errno */
    struct wd_error *err; /* caller frees (wd_err_free) */
    int64_t create_us, start_us;
};
/* min(2 * online CPUs, 8), at least 1 */
unsigned wd_docker_default_parallelism(void);
/* Run the jobs on at most @max_threads threads (0 = default), each with its own connection.
 * Every job reports its own result. Returns 0 if all succeeded, else the first failing job's
 * -errno with *err summarising "k of n jobs failed: <first error>". */
int wd_docker_run_jobs(struct wd_docker *d, struct wd_docker_job *jobs, size_t njobs,
                       unsigned max_threads, struct wd_error **err);
void wd_docker_jobs_clear(struct wd_docker_job *jobs, size_t njobs); /* free ids and errors */

/* ---- events -------------------------------------------------------------------------------- */

enum wd_event_action {
    WD_EV_CREATE = 1 << 0,
    WD_EV_START = 1 << 1,
    WD_EV_DIE = 1 << 2,    /* exit_code set */
    WD_EV_HEALTH = 1 << 3, /* health set */
    WD_EV_OOM = 1 << 4,
    WD_EV_KILL = 1 << 5,
    WD_EV_STOP = 1 << 6,
    WD_EV_DESTROY = 1 << 7, /* Podman's "remove" */
    WD_EV_OTHER = 1 << 8,
    /* Not engine events, always delivered: the stream ended (detail says why) and the follower
     * is reconnecting with backoff; then a new stream was accepted. Events between the two are
     * lost: list the containers on BACK. */
    WD_EV_LOST = 1 << 9,
    WD_EV_BACK = 1 << 10,
};
struct wd_docker_event {
    enum wd_event_action action;
    const char *action_text; /* as sent ("health_status: healthy", "died" ...) */
    const char *type;        /* "container" ... */
    const char *id;
    const char *name;
    int64_t exit_code;  /* die: the exit code; else -1 */
    const char *health; /* health: healthy / unhealthy; else NULL */
    int64_t time_ns;
    const struct wd_label *attrs; /* Actor.Attributes (container labels, name, image ...) */
    size_t nattrs;
    const char *detail; /* WD_EV_LOST: why the stream ended; else NULL or "" */
};
/* Called on the events thread; the event and its strings are valid during the call only. */
typedef void (*wd_docker_event_fn)(void *arg, const struct wd_docker_event *ev);
struct wd_docker_events;
/* wd_docker_events_start - follow GET /events for containers carrying all @labels, delivering
 * the actions in @mask to @cb on a new thread. Returns once the engine has accepted the stream,
 * so nothing that happens afterwards is missed. Caller owns *out (wd_docker_events_stop). */
int wd_docker_events_start(struct wd_docker *d, const char *const *labels, size_t nlabels,
                           unsigned mask, wd_docker_event_fn cb, void *arg,
                           struct wd_docker_events **out, struct wd_error **err);
/* Stop (within about a second), join and free. */
void wd_docker_events_stop(struct wd_docker_events *ev);

/* ---- images (see engine/docker/image.h for building) ----------------------------------------------- */

struct wd_image_info {
    char *id; /* sha256:... */
    int64_t size_bytes;
    struct wd_label *labels;
    size_t nlabels;
};
void wd_image_info_free(struct wd_image_info *i);
/* -ENOENT if there is no such image. */
int wd_docker_image_inspect(struct wd_docker *d, const char *name, struct wd_image_info *out,
                            struct wd_error **err);
/* -ENOENT if absent, -EEXIST (409) if a container still uses it. */
int wd_docker_image_remove(struct wd_docker *d, const char *name, bool force,
                           struct wd_error **err);
/* POST /images/load of a docker-archive tarball. *loaded (may be NULL) gets the "Loaded
 * image" text. Errors inside the 200 stream (Docker) fail like HTTP errors. */
int wd_docker_image_load(struct wd_docker *d, const void *tar, size_t len, char **loaded,
                         struct wd_error **err);
/* POST /build of a tar context (classic builder). @tag, @labels applied. *id gets the image ID. */
int wd_docker_image_build(struct wd_docker *d, const void *tar, size_t len, const char *tag,
                          const struct wd_kv *labels, size_t nlabels, char **id,
                          struct wd_error **err);

/* ---- cleanup ------------------------------------------------------------------------------- */

struct wd_cleanup_stats {
    size_t containers, networks, images, images_kept;
};
/* Remove every container (forced), then network, then image carrying all @labels ("k=v").
 * 404 counts as done; an image still used elsewhere (409) is kept and counted. */
int wd_docker_cleanup(struct wd_docker *d, const char *const *labels, size_t nlabels,
                      struct wd_cleanup_stats *st, struct wd_error **err);

#endif
