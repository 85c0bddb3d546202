/* engine/deploy/hostport.h - [docker] host_ports: the deployer's end of a 'P' link
 * (docs/design/shim-link.md). A shim sends the port its app connected to on the container's
 * loopback; we dial the host's localhost:PORT (127.0.0.1, then ::1) and relay bytes both ways
 * on the loop thread. Only configured ports are dialed: the port comes from a container. */
#ifndef WD_ENGINE_HOSTPORT_H
#define WD_ENGINE_HOSTPORT_H

#include "engine/base/loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_hostports;

/* ports: the allowed ones (copied). target: the host to dial, NULL for the loopback
 * (127.0.0.1, then ::1); else a name resolved at each connection (e.g. "host.docker.internal",
 * an /etc/hosts entry in the compose manager's container). say(arg, line) reports what the user
 * must know (a port nothing answers on); NULL: wd_warn. */
struct wd_hostports *wd_hostports_new(struct wd_loop *l, const uint16_t *ports, size_t n,
                                      const char *target,
                                      void (*say)(void *arg, const char *line), void *say_arg);
/* Closes every relay still open. NULL-safe. Loop thread. */
void wd_hostports_free(struct wd_hostports *h);

bool wd_hostports_allowed(const struct wd_hostports *h, uint16_t port);

/* Take link_fd (non-blocking, its port already read) and relay it to the host's
 * localhost:port. who names the replica in messages. A port nothing listens on is said at warn
 * level once per port (again only after it answered in between), and the link is closed: the
 * app sees its connection reset. */
void wd_hostports_relay(struct wd_hostports *h, int link_fd, uint16_t port, const char *who);

/* Like wd_hostports_relay for a link whose port is still to come (u16, big-endian, the first
 * two bytes it carries): the compose manager's 'P' links. A port not in the list closes it. */
void wd_hostports_adopt(struct wd_hostports *h, int link_fd, const char *who);

/* Relays open now (tests, ps). */
size_t wd_hostports_active(const struct wd_hostports *h);

#endif
