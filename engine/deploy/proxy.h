/* engine/deploy/proxy.h - a TCP (layer 4) proxy on the event loop: one listening address per weaver
 * listener, connections balanced round-robin over live backends. Any TCP protocol works. */
#ifndef WD_PROXY_H
#define WD_PROXY_H

#include "engine/base/error.h"
#include "engine/base/loop.h"

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

#endif
