/* images/shim/shimcfg.c - see shimcfg.h. Pure: reads only its arguments, writes only *cfg. */
#include "images/shim/shimcfg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *cfg_env(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* Strict decimal: digits only, no sign or spaces, value <= max. */
static int cfg_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

__attribute__((format(printf, 2, 3))) static int cfg_fail(struct shim_cfg *cfg, const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cfg->err, sizeof cfg->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* HOST:PORT or [V6]:PORT; HOST is letters, digits, '.', '-', '_' (or an IPv6 address). */
static int cfg_hostport(struct shim_cfg *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    const char *h = v, *he = colon;
    if (!colon)
        return cfg_fail(cfg, "WEAVER_SHIM_MANAGER '%.40s' is not HOST:PORT", v);
    if (v[0] == '[') {
        if (colon == v || colon[-1] != ']')
            return cfg_fail(cfg, "WEAVER_SHIM_MANAGER '%.40s' is not [IPV6]:PORT", v);
        h = v + 1;
        he = colon - 1;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl > SHIM_HOST_MAX)
        return cfg_fail(cfg, "WEAVER_SHIM_MANAGER host must be 1-%d characters", SHIM_HOST_MAX);
    for (const char *p = h; p < he; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || (v[0] == '[' && c == ':');
        if (!ok)
            return cfg_fail(cfg, "WEAVER_SHIM_MANAGER host has a bad character (0x%02x)",
                            (unsigned)(unsigned char)c);
    }
    unsigned long n;
    if (cfg_uint(colon + 1, 65535, &n) < 0 || n == 0)
        return cfg_fail(cfg, "WEAVER_SHIM_MANAGER port '%.20s' is not 1-65535", colon + 1);
    memcpy(cfg->mgr_host, h, hl);
    cfg->mgr_host[hl] = '\0';
    snprintf(cfg->mgr_port, sizeof cfg->mgr_port, "%u", (unsigned)(n & 0xffff));
    cfg->manager = true;
    return 0;
}

int shim_cfg_parse(struct shim_cfg *cfg, int argc, char *const *argv, char *const *envp)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = SHIM_DEFAULT_PORT;
    cfg->orphan_secs = SHIM_DEFAULT_ORPHAN_SECS;
    cfg->log_level = SHIM_LOG_INFO;
    memcpy(cfg->dir, SHIM_DEFAULT_DIR, sizeof SHIM_DEFAULT_DIR);

    /* argv */
    if (argc < 2 || !argv)
        return cfg_fail(cfg, "usage: weaver-docker-shim [--] PROGRAM [ARGS...] | --health");
    const char *a = argv[1];
    if (!a)
        return cfg_fail(cfg, "argv[1] is NULL");
    if (strcmp(a, "--health") == 0 || strcmp(a, "--version") == 0 || strcmp(a, "--help") == 0 ||
        strcmp(a, "-h") == 0) {
        if (argc != 2)
            return cfg_fail(cfg, "%s takes no arguments", a);
        cfg->mode = a[2] == 'h' ? SHIM_HEALTH : a[2] == 'v' ? SHIM_VERSION : SHIM_HELP;
    } else {
        int i = 1;
        if (strcmp(a, "--") == 0)
            i = 2;
        else if (a[0] == '-')
            return cfg_fail(cfg, "unknown option '%.40s'", a);
        if (i >= argc || !argv[i] || !argv[i][0])
            return cfg_fail(cfg, "missing PROGRAM");
        cfg->mode = SHIM_RUN;
        cfg->prog = i;
    }

    /* environment */
    const char *v;
    if ((v = cfg_env(envp, "WEAVER_SHIM_TOKEN")) != NULL) {
        if (strlen(v) != 2 * SHIM_TOKEN_LEN ||
            wd_hex_decode(v, strlen(v), cfg->token, SHIM_TOKEN_LEN) != SHIM_TOKEN_LEN)
            return cfg_fail(cfg, "WEAVER_SHIM_TOKEN must be %d hex characters",
                            2 * SHIM_TOKEN_LEN);
        cfg->link = true;
    }
    unsigned long n;
    if ((v = cfg_env(envp, "WEAVER_SHIM_PORT")) != NULL) {
        if (cfg_uint(v, 65535, &n) < 0 || n == 0)
            return cfg_fail(cfg, "WEAVER_SHIM_PORT '%.20s' is not a port (1-65535)", v);
        cfg->port = (uint16_t)n;
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_ORPHAN_SECS")) != NULL) {
        if (cfg_uint(v, SHIM_MAX_ORPHAN_SECS, &n) < 0)
            return cfg_fail(cfg, "WEAVER_SHIM_ORPHAN_SECS '%.20s' is not 0-%d", v,
                            SHIM_MAX_ORPHAN_SECS);
        cfg->orphan_secs = (unsigned)n;
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_DRAIN_MS")) != NULL) {
        if (cfg_uint(v, SHIM_MAX_DRAIN_MS, &n) < 0)
            return cfg_fail(cfg, "WEAVER_SHIM_DRAIN_MS '%.20s' is not 0-%d", v, SHIM_MAX_DRAIN_MS);
        cfg->drain_ms = (unsigned)n;
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_PIPES")) != NULL) {
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
            return cfg_fail(cfg, "WEAVER_SHIM_PIPES '%.20s' is not 0 or 1", v);
        cfg->pipes = v[0] == '1';
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_LOG")) != NULL) {
        if (strcmp(v, "debug") == 0)
            cfg->log_level = SHIM_LOG_DEBUG;
        else if (strcmp(v, "info") == 0)
            cfg->log_level = SHIM_LOG_INFO;
        else if (strcmp(v, "warn") == 0)
            cfg->log_level = SHIM_LOG_WARN;
        else
            return cfg_fail(cfg, "WEAVER_SHIM_LOG '%.20s' is not debug, info or warn", v);
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_DIR")) != NULL) {
        size_t len = strlen(v);
        while (len > 1 && v[len - 1] == '/')
            len--;
        if (v[0] != '/' || len < 2)
            return cfg_fail(cfg, "WEAVER_SHIM_DIR must be an absolute path other than /");
        if (len > SHIM_DIR_MAX)
            return cfg_fail(cfg, "WEAVER_SHIM_DIR is longer than %d bytes", SHIM_DIR_MAX);
        memcpy(cfg->dir, v, len);
        cfg->dir[len] = '\0';
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_MANAGER")) != NULL && cfg_hostport(cfg, v) < 0)
        return -1;
    if ((v = cfg_env(envp, "WEAVER_SHIM_GROUP")) != NULL) {
        size_t len = strlen(v);
        if (len == 0 || len > SHIM_GROUP_MAX)
            return cfg_fail(cfg, "WEAVER_SHIM_GROUP must be 1-%d characters", SHIM_GROUP_MAX);
        for (size_t k = 0; k < len; k++)
            if (v[k] <= ' ' || v[k] > '~')
                return cfg_fail(cfg, "WEAVER_SHIM_GROUP has a bad character (0x%02x)",
                                (unsigned)(unsigned char)v[k]);
        if (!cfg->manager)
            return cfg_fail(cfg, "WEAVER_SHIM_GROUP needs WEAVER_SHIM_MANAGER");
        memcpy(cfg->group, v, len + 1);
    }
    if ((v = cfg_env(envp, "WEAVER_SHIM_HOST_PORTS")) != NULL && v[0]) {
        /* "5432,3306": ports the app reaches on the container's loopback */
        const char *p = v;
        for (;;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            char num[8];
            if (len == 0 || len >= sizeof num)
                return cfg_fail(cfg, "WEAVER_SHIM_HOST_PORTS '%.40s' is not a list of ports", v);
            memcpy(num, p, len);
            num[len] = '\0';
            if (cfg_uint(num, 65535, &n) < 0 || n == 0)
                return cfg_fail(cfg, "WEAVER_SHIM_HOST_PORTS '%.40s' is not a list of ports", v);
            if (cfg->nhost_ports == WD_LINK_MAX_HOST_PORTS)
                return cfg_fail(cfg, "WEAVER_SHIM_HOST_PORTS has more than %d ports",
                                WD_LINK_MAX_HOST_PORTS);
            for (size_t k = 0; k < cfg->nhost_ports; k++)
                if (cfg->host_ports[k] == n)
                    return cfg_fail(cfg, "WEAVER_SHIM_HOST_PORTS repeats port %lu", n);
            cfg->host_ports[cfg->nhost_ports++] = (uint16_t)n;
            if (!e)
                break;
            p = e + 1;
        }
        if (!cfg->link)
            return cfg_fail(cfg, "WEAVER_SHIM_HOST_PORTS needs WEAVER_SHIM_TOKEN");
    }
    if (cfg->pipes && (!cfg->link || cfg->manager))
        return cfg_fail(cfg,
                        "WEAVER_SHIM_PIPES needs WEAVER_SHIM_TOKEN and no WEAVER_SHIM_MANAGER");
    if (cfg->manager && (!cfg->link || !cfg->group[0]))
        return cfg_fail(cfg, "WEAVER_SHIM_MANAGER needs WEAVER_SHIM_TOKEN and WEAVER_SHIM_GROUP");
    return 0;
}
