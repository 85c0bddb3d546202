/* images/shim/shimcfg.h - the shim's configuration: argv plus environment, parsed by a pure
 * function (no I/O, no allocation, no global state) so it can be fuzzed on its own.
 * tests/fuzz/fuzz_shimcfg.c #includes shimcfg.c directly (the fuzz build links libwd.a only). */
#ifndef WD_SHIMCFG_H
#define WD_SHIMCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/link.h"

#define SHIM_TOKEN_LEN WD_LINK_TOKEN_LEN /* raw bytes; 64 hex chars in WEAVER_SHIM_TOKEN */
#define SHIM_DEFAULT_PORT 7071
#define SHIM_DEFAULT_DIR "/tmp/weaver"
#define SHIM_DEFAULT_ORPHAN_SECS 30
#define SHIM_MAX_ORPHAN_SECS 86400
#define SHIM_MAX_DRAIN_MS 600000
/* Longest WEAVER_SHIM_DIR: DIR + "/deployer.sock" must fit sockaddr_un.sun_path (108 with NUL). */
#define SHIM_DIR_MAX (108 - 1 - 14)
#define SHIM_HOST_MAX 253  /* WEAVER_SHIM_MANAGER host part (a DNS name or an IP address) */
#define SHIM_GROUP_MAX 255 /* WEAVER_SHIM_GROUP */

enum shim_mode { SHIM_RUN, SHIM_HEALTH, SHIM_VERSION, SHIM_HELP };
enum shim_log_level { SHIM_LOG_DEBUG, SHIM_LOG_INFO, SHIM_LOG_WARN };

struct shim_cfg {
    enum shim_mode mode;
    int prog;                        /* SHIM_RUN: index of PROGRAM in argv */
    bool link;                       /* WEAVER_SHIM_TOKEN given: TCP link enabled */
    uint8_t token[SHIM_TOKEN_LEN];
    uint16_t port;                   /* WEAVER_SHIM_PORT */
    unsigned orphan_secs;            /* WEAVER_SHIM_ORPHAN_SECS; 0 = never */
    unsigned drain_ms; /* WEAVER_SHIM_DRAIN_MS: keep serving this long after SIGTERM */
    enum shim_log_level log_level;   /* WEAVER_SHIM_LOG */
    char dir[SHIM_DIR_MAX + 1];      /* WEAVER_SHIM_DIR, absolute, no trailing '/' */
    /* Manager mode (docs/design/compose.md): WEAVER_SHIM_MANAGER=HOST:PORT set. The shim dials
     * the manager instead of listening, registers as a replica of WEAVER_SHIM_GROUP, gets the
     * weavelet's WEAVELET_ARGS from it, then dials its 'W' and 'D' links. Needs the token. */
    bool manager;
    char mgr_host[SHIM_HOST_MAX + 1]; /* no brackets for IPv6 */
    char mgr_port[6];                 /* decimal, 1-65535 */
    char group[SHIM_GROUP_MAX + 1];   /* printable ASCII, no spaces */
    /* WEAVER_SHIM_HOST_PORTS=5432,3306 (needs the token): the shim listens on 127.0.0.1 and
     * ::1 at these ports and relays each connection over a parked 'P' link to the deployer,
     * which dials the host's localhost:PORT */
    uint16_t host_ports[WD_LINK_MAX_HOST_PORTS];
    size_t nhost_ports;
    /* WEAVER_SHIM_PIPES=1 (needs the token; not in manager mode): a weavelet of weaver
     * v0.20-v0.22. It gets one end of a socketpair as fds 3 and 4 (ENVELOPE_TO_WEAVELET_FD=3,
     * WEAVELET_TO_ENVELOPE_FD=4) instead of control sockets, and the first 'W' link carries the
     * other end; when that link ends, the weavelet reads EOF and exits. */
    bool pipes;
    char err[160];                   /* set when shim_cfg_parse fails */
};

/* Parse argv (argc entries, argv[argc] not read) and envp (NULL-terminated "KEY=VALUE" list,
 * may be NULL; the first entry of a key wins, as with getenv). Returns 0, or -1 with cfg->err
 * set. Usage: weaver-docker-shim [--] PROGRAM [ARGS...] | --health | --version | --help */
int shim_cfg_parse(struct shim_cfg *cfg, int argc, char *const *argv, char *const *envp);

#endif
