/* engine/weaver/config.h - weaver.toml (protocol §6): the application section, every
 * section's text for the weavelets, and our own [docker] section.
 *
 * Ownership: wd_config_load() returns a struct wd_config the caller frees with wd_config_free();
 * every string and array in it belongs to it.
 * Section [docker] (or ["github.com/ServiceWeaver/weaver/docker"]) has the keys replicas,
 * listeners, groups, env, env_file, host_ports, volumes, secrets, networks, extra_hosts, memory,
 * cpus, pids, mtls and metrics (a groups entry: replicas, env, env_file, memory, cpus, pids); unknown keys,
 * wrong types and out-of-range values are errors. Sections of other deployers ([multi], [ssh],
 * ...) and of components are not checked, only passed on.
 * Host paths in [docker] (env_file, bind sources, secrets) are relative to the config file's
 * directory ("~/" is $HOME); they are checked, and env files read, at load time (not with
 * WD_CONFIG_NO_FILES).
 * Errors (EINVAL unless noted) are one line: "FILE:LINE: what is wrong; what to do", or
 * "FILE: ..." when no line applies; a malformed env file line is "ENVFILE:LINE: [docker]
 * env_file: ...". A file over WD_TOML_MAX_FILE fails with EMSGSIZE; an unreadable file with the
 * open/read errno, and so does a file named in [docker] that is missing or unreadable (ENOENT,
 * EACCES, EISDIR, ...; an env file over 1 MiB: EMSGSIZE).
 */
#ifndef WD_ENGINE_CONFIG_H
#define WD_ENGINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_error;

#define WD_CONFIG_APP_SECTION "github.com/ServiceWeaver/weaver"
#define WD_CONFIG_APP_SHORT "serviceweaver"
#define WD_CONFIG_DOCKER_SECTION "github.com/ServiceWeaver/weaver/docker"
#define WD_CONFIG_DOCKER_SHORT "docker"
#define WD_CONFIG_MAX_REPLICAS 64

struct wd_strv {
    char **v;
    size_t n;
};

/* A top-level section: name as written (unquoted), body re-encoded as a standalone TOML
 * document with sub-tables re-rooted relative to the section (§6.5). */
struct wd_section {
    char *name;
    char *text;
};

/* [docker] listeners.NAME = {address = "host:port"} */
struct wd_listener_cfg {
    char *name;
    char *address; /* "host:port", ":port" or "[v6]:port"; port 0..65535; always set */
    int line;
};

/* Resource limits of one container; 0 = not set (inherit, or unlimited). */
struct wd_resources {
    int64_t memory_bytes; /* memory = "256m" (docker's units b, k, m, g; at least 6 MiB) */
    int64_t nano_cpus;    /* cpus = 0.5 -> 500000000; 0.01 .. host CPUs is not checked */
    int64_t pids;         /* pids = 512; 16 .. 4194304 */
};

/* [docker] groups."<component>" = {replicas = N, env = {...}, env_file = "...", memory, cpus,
 * pids} */
struct wd_group_cfg {
    char *component;
    int replicas; /* 1..64; when not given, the section's replicas */
    int line;
    /* KEY=VALUE: the section's env_file, the section's env, then this group's env_file and env,
     * a later KEY replacing the value of an earlier one in its place (so each group's list is
     * complete); v is NULL-terminated (or NULL when n == 0) */
    struct wd_strv env;
    struct wd_resources res; /* each unset field taken from the section's */
};

/* [docker] volumes = ["./keys:/keys:ro", "data:/var/lib/app"] */
struct wd_volume_cfg {
    bool bind;      /* host path (the source began with '.', '/' or '~'), else a named volume */
    char *source;   /* bind: absolute, cleaned host path (it exists); named: the volume name */
    char *target;   /* absolute path in the container, cleaned, not "/" */
    bool read_only; /* ":ro" */
    int line;
};

/* [docker] secrets = {NAME = "path"}: the host file at /run/secrets/NAME, read-only */
struct wd_secret_cfg {
    char *name; /* [a-zA-Z0-9_.-]+, not "." or ".." */
    char *path; /* absolute host path of a regular file (checked at load) */
    int line;
};

struct wd_config {
    char *path;   /* config file (absolute), NULL when loaded from a binary */
    char *name;   /* [serviceweaver] name, default basename(binary) */
    char *binary; /* absolute path (relative paths resolved against the config file's dir) */
    char *binary_given; /* as the toml writes it, for messages; NULL when loaded from a binary */
    int binary_line;
    char *path_shown; /* the config file as the user named it, for messages */
    struct wd_strv args, env; /* v is NULL-terminated (or NULL when n == 0); env is KEY=VALUE */
    struct wd_strv *colocate;
    size_t ncolocate;
    int64_t rollout_nanos; /* Go duration string ("5m", "1h30m", "300ms") or integer ns */
    struct wd_section *sections; /* all sections, keyed as written, incl. serviceweaver, docker */
    size_t nsections;
    /* [docker] (also long form ["github.com/ServiceWeaver/weaver/docker"]) */
    int replicas; /* default 1, 1..64 */
    struct wd_listener_cfg *listeners;
    size_t nlisteners;
    struct wd_group_cfg *groups;
    size_t ngroups;
    /* KEY=VALUE for every container (env_file first, then env; a later KEY replaces the value
     * of an earlier one, which keeps its place). Never written into images or labels. */
    struct wd_strv docker_env;
    uint16_t *host_ports; /* host_ports = [5432]: 1..65535, no repeats; localhost:PORT in every
                             container reaches the host's localhost:PORT */
    size_t nhost_ports;
    struct wd_volume_cfg *volumes;
    size_t nvolumes;
    struct wd_secret_cfg *secrets;
    size_t nsecrets;
    struct wd_strv networks;    /* existing engine networks every container also joins */
    struct wd_strv extra_hosts; /* "NAME:ADDRESS" (extra_hosts = {"db.local" = "10.1.2.3"}) */
    struct wd_resources res;    /* the section's; pids defaults to WD_CONFIG_DEFAULT_PIDS */
    bool mtls; /* mtls = true: the data plane between weavelets is mutual TLS with certificates
                  of a per-deployment CA, and each group may call only what the binary's call
                  graph says (engine/deploy/mtls.h) */
    char *metrics_addr; /* metrics = "host:port": Prometheus text of the app's metrics there,
                           else NULL (engine/deploy/operate.h) */
    /* a rollout (engine/deploy/rollout.c): how long the old version's open connections may
     * finish after the new one took all traffic (drain = "10s"), and how long the new one may
     * take to start and answer (rollout_timeout = "2m") */
    int64_t drain_ms, rollout_timeout_ms;
};

#define WD_CONFIG_DEFAULT_DRAIN_MS 10000
#define WD_CONFIG_DEFAULT_ROLLOUT_TIMEOUT_MS 120000

#define WD_CONFIG_DEFAULT_PIDS 4096

/* wd_config_group_env / wd_config_group_res - the settings of the group that holds component:
 * the first groups."..." entry naming component or a component colocated with it; else (and
 * for NULL) the section's docker_env and res. The env list is complete; the limits have every
 * unset field filled from the section's. */
const struct wd_strv *wd_config_group_env(const struct wd_config *c, const char *component);
/* wd_env_has_key - env (KEY=VALUE entries) has an entry for kv's KEY ("KEY=..." or "KEY"). */
bool wd_env_has_key(const struct wd_strv *env, const char *kv);
struct wd_resources wd_config_group_res(const struct wd_config *c, const char *component);

/* wd_parse_env_file - docker's env-file format: one KEY=VALUE per line, taken literally (no
 * quotes, no expansion); blank lines and lines starting with '#' (after leading white space)
 * are skipped; a line with a KEY alone takes KEY's value from our own environment, and is left
 * out when we have none. KEY is non-empty with no white space or NUL. Lines end in \n or \r\n;
 * a leading UTF-8 BOM is dropped. Errors are one line "PATH:LINE: ..." (EINVAL). On success
 * the entries are appended to *out (not merged), in file order; on error *out is unchanged. */
int wd_parse_env_file(const char *text, size_t len, const char *path, struct wd_strv *out,
                      struct wd_error **err);

/* wd_config_load - read path: a weaver.toml, or an ELF binary (first 4 bytes 7f 45 4c 46), which
 * gives a default config with binary = path (made absolute), name = its base name, no sections.
 * On success *out is set and owned by the caller (wd_config_free). */
int wd_config_load(const char *path, struct wd_config **out, struct wd_error **err);
void wd_config_free(struct wd_config *c); /* NULL-safe */

/* wd_config_check_input - the argument of up/compose is a weaver.toml (by its name, as weaver
 * requires) or an ELF binary. Returns 0, -ENOENT (missing) or -EINVAL, with a one-line error. */
int wd_config_check_input(const char *path, struct wd_error **err);
/* wd_config_resolve_input - what up/compose/inspect were given, as compose users expect: a
 * directory (or NULL: the current one) means its weaver.toml; anything else goes through
 * wd_config_check_input. *out is the path to load (caller frees). */
int wd_config_resolve_input(const char *arg, char **out, struct wd_error **err);
/* wd_config_check_binary - the binary a toml names exists; else one line with the toml's file,
 * line and key, and where the relative path led. */
int wd_config_check_binary(const struct wd_config *c, struct wd_error **err);
/* wd_config_valid_app_name - the app name can name containers, networks and image tags:
 * 1-40 of [a-z0-9_-.], not starting with a dot. */
bool wd_config_valid_app_name(const char *s);
/* The same rule, with a one-line error that says which part of it @s breaks. */
int wd_config_check_app_name(const char *s, struct wd_error **err);

/* wd_config_parse - like wd_config_load for a weaver.toml already in memory. path is the file
 * name used in messages and to resolve a relative binary (relative to the current directory
 * when path has no directory part). */
int wd_config_parse(const char *text, size_t len, const char *path, struct wd_config **out,
                    struct wd_error **err);

/* Flags of wd_config_parse_ex. */
enum {
    /* The files named in [docker] are not on this machine (the manager of a compose file parses
     * the weaver.toml text in its own container): env files are not read (the env lists hold
     * only the env tables' entries), bind sources and secrets are not checked (their paths are
     * kept as written, made absolute against the config's directory where possible). Every
     * syntax and range check still applies. */
    WD_CONFIG_NO_FILES = 1u << 0,
};

/* wd_config_parse_ex - wd_config_parse with flags (WD_CONFIG_*; an unknown flag is -EINVAL). */
int wd_config_parse_ex(const char *text, size_t len, const char *path, unsigned flags,
                       struct wd_config **out, struct wd_error **err);

/* wd_config_parse_duration - a Go duration ("1h30m", "300ms", "1.5s", "0") to nanoseconds.
 * Returns 0 or -EINVAL (no message: the caller reports). Negative durations are rejected. */
int wd_config_parse_duration(const char *s, int64_t *out_ns);

#endif
