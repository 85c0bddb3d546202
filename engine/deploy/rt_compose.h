/* engine/deploy/rt_compose.h - the "compose" runtime: the envelope runs in a manager container and
 * the weavelets' shims dial in to register (docs/design/compose.md). Used by `weaver-docker
 * manage`. */
#ifndef WD_ENGINE_RT_COMPOSE_H
#define WD_ENGINE_RT_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/link.h"

#define WD_COMPOSE_MANAGER_PORT 7070 /* where shims reach the manager (inside the network) */
#define WD_COMPOSE_HELLO_LEN WD_LINK_HELLO_LEN
#define WD_COMPOSE_NAME_MAX 255      /* group name or weavelet id after the hello */
#define WD_COMPOSE_IP_MAX 45         /* the shim's own address after an 'A' hello */

struct wd_runtime_ops;
extern const struct wd_runtime_ops wd_runtime_compose; /* .external = true */

struct wd_compose_rt_opts {
    uint8_t token[32]; /* the per-file secret, shared with every shim */
    uint16_t port;     /* TCP port to listen on for shims (0.0.0.0) */
    /* where [docker] host_ports are relayed: a name in the manager's /etc/hosts; NULL =
     * host.docker.internal (Podman's file: host.containers.internal) */
    const char *host_name;
    uint64_t stamp; /* when the file was written (ms): the front prefers the newest */
};

/* Set before wd_deploy_run with .rt = &wd_runtime_compose (copied). */
void wd_runtime_compose_configure(const struct wd_compose_rt_opts *o);

/* A parsed hello from a shim: "WDL1", channel, 3 zero bytes, 32-byte token, then u16 big-endian
 * length + name (the group for 'A', the weavelet id for 'W'/'D'), and for 'A' only u16 length +
 * the shim's own IP address (text; may be empty). */
struct wd_compose_hello {
    char chan; /* 'A', 'W', 'D', 'P' or 'S' */
    const uint8_t *token;
    char name[WD_COMPOSE_NAME_MAX + 1];
    char ip[WD_COMPOSE_IP_MAX + 1];
};

#define WD_COMPOSE_STATUS_LEN 9 /* the answer to an 'S' hello: ready byte + u64 stamp */

/* wd_compose_status - ask the manager at @sa for its status ('S' hello), waiting at most
 * @timeout_ms. *ready: the whole deployment serves (every group has a ready replica and every
 * listener a backend; once true it stays true); *stamp: its file's. Returns 0 or -errno. */
struct sockaddr;
int wd_compose_status(const struct sockaddr *sa, unsigned salen, int timeout_ms, bool *ready,
                      uint64_t *stamp);

/* wd_compose_hello_parse - pure. Returns the number of bytes the complete hello takes (> 0),
 * 0 if more bytes are needed (*need gets how many in total, at least), or -EPROTO when it is
 * malformed. @out->token points into @buf. */
int wd_compose_hello_parse(const uint8_t *buf, size_t len, struct wd_compose_hello *out,
                           size_t *need);

#endif
