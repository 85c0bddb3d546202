/* engine/config.h - weaver.toml (protocol §6): the application section, every section's text
 * for the weavelets, and our own [docker] section.
 *
 * Ownership: wd_config_load() returns a struct wd_config the caller frees with wd_config_free();
 * every string and array in it belongs to it.
 * Section [docker] (or ["github.com/ServiceWeaver/weaver/docker"]) has the keys replicas,
 * listeners and groups; unknown keys, wrong types and out-of-range values are errors. Sections of
 * other deployers ([multi], [ssh], ...) and of components are not checked, only passed on.
 * Errors (EINVAL unless noted) are one line: "FILE:LINE: what is wrong; what to do", or
 * "FILE: ..." when no line applies. A file over WD_TOML_MAX_FILE fails with EMSGSIZE; an
 * unreadable file with the open/read errno.
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

/* [docker] groups."<component>" = {replicas = N} */
struct wd_group_cfg {
    char *component;
    int replicas; /* 1..64; when not given, the section's replicas */
    int line;
};

struct wd_config {
    char *path;   /* config file (absolute), NULL when loaded from a binary */
    char *name;   /* [serviceweaver] name, default basename(binary) */
    char *binary; /* absolute path (relative paths resolved against the config file's dir) */
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
};

/* wd_config_load - read path: a weaver.toml, or an ELF binary (first 4 bytes 7f 45 4c 46), which
 * gives a default config with binary = path (made absolute), name = its base name, no sections.
 * On success *out is set and owned by the caller (wd_config_free). */
int wd_config_load(const char *path, struct wd_config **out, struct wd_error **err);
void wd_config_free(struct wd_config *c); /* NULL-safe */

/* wd_config_check_input - the argument of up/compose is a weaver.toml (by its name, as weaver
 * requires) or an ELF binary. Returns 0, -ENOENT (missing) or -EINVAL, with a one-line error. */
int wd_config_check_input(const char *path, struct wd_error **err);
/* wd_config_valid_app_name - the app name can name containers, networks and image tags:
 * 1-40 of [a-z0-9_-.], not starting with a dot. */
bool wd_config_valid_app_name(const char *s);

/* wd_config_parse - like wd_config_load for a weaver.toml already in memory. path is the file
 * name used in messages and to resolve a relative binary (relative to the current directory
 * when path has no directory part). */
int wd_config_parse(const char *text, size_t len, const char *path, struct wd_config **out,
                    struct wd_error **err);

/* wd_config_parse_duration - a Go duration ("1h30m", "300ms", "1.5s", "0") to nanoseconds.
 * Returns 0 or -EINVAL (no message: the caller reports). Negative durations are rejected. */
int wd_config_parse_duration(const char *s, int64_t *out_ns);

#endif
