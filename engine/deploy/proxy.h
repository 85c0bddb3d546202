/* engine/deploy/proxy.h - a TCP (layer 4) proxy on the event loop: one listening address per weaver
 * listener, connections balanced round-robin over live backends. Any TCP protocol works. */
#ifndef WD_PROXY_H
#define WD_PROXY_H

#include "engine/base/error.h"
#include "engine/base/loop.h"

#include <stddef.h>
#include <stdint.h>

struct wd_proxy;

/* Parse "host:port", "[v6]:port" or ":port" (empty host = all interfaces). Returns 0 or
 * -EINVAL. *host and *port are caller-owned. */
int wd_split_hostport(const char *addr, char **host, char **port, struct wd_error **err);
/* wd_tcp_listen - a non-blocking TCP socket listening on @hostport (an empty host: all
 * interfaces, IPv6 dual stack when there is one) in *out. Returns 0, or <0 with *err:
 * -EINVAL unresolvable, -EADDRINUSE taken ("address H:P is already in use"), or errno. */
int wd_tcp_listen(const char *hostport, int backlog, int *out, struct wd_error **err);

/* Bind and listen on address (e.g. "localhost:12080", ":0"). -EADDRINUSE if taken. */
int wd_proxy_new(struct wd_loop *l, const char *name, const char *address, struct wd_proxy **out,
                 struct wd_error **err);
void wd_proxy_free(struct wd_proxy *p);
/* The bound address, "127.0.0.1:12080" or "[::]:12080". Borrowed. */
const char *wd_proxy_address(const struct wd_proxy *p);
int wd_proxy_port(const struct wd_proxy *p);
/* Add a backend "ip:port" owned by owner; remove all of an owner's backends. */
void wd_proxy_add_backend(struct wd_proxy *p, const char *addr, const void *owner);
void wd_proxy_remove_backends(struct wd_proxy *p, const void *owner);
size_t wd_proxy_nbackends(const struct wd_proxy *p);
/* The i-th backend's address, or NULL past the end. Borrowed. */
const char *wd_proxy_backend(const struct wd_proxy *p, size_t i);
/* Open connections (both directions relayed), for a drain. */
size_t wd_proxy_nconns(const struct wd_proxy *p);
/* Connections accepted so far (a drain waits until no new ones come). */
uint64_t wd_proxy_accepted(const struct wd_proxy *p);

/* --- rollouts (engine/deploy/rollout.c) --- */
/* wd_proxy_set_split - send @permille (0..1000) of new connections to @remote ("ip:port", the
 * next version's own proxy), spread evenly; the rest round-robin to our backends, as before.
 * A connection stays where it started. A remote that refuses a connection gets no retry: our
 * backends serve it. @remote NULL ends the split. Returns 0 or -EINVAL (not numeric). */
int wd_proxy_set_split(struct wd_proxy *p, const char *remote, unsigned permille);
/* Connections sent to the remote so far, and those it refused (served here instead). */
void wd_proxy_split_stats(const struct wd_proxy *p, uint64_t *sent, uint64_t *failed);
/* wd_proxy_listener_fd - the listening socket new connections come to (an adopted one, else
 * our own); still ours (a rollout's handover passes copies). -1 once closed. */
int wd_proxy_listener_fd(const struct wd_proxy *p);
/* wd_proxy_close_listeners - accept no more (every listening socket closed); open connections
 * go on. */
void wd_proxy_close_listeners(struct wd_proxy *p);
/* wd_proxy_adopt_listener - also accept on @fd (a listening socket another deployer held; we
 * own it now), and report its address from now on. */
void wd_proxy_adopt_listener(struct wd_proxy *p, int fd);

#endif
