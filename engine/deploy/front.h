/* engine/deploy/front.h - the front of a Swarm stack (docs/design/rollout.md "Compose and
 * Swarm"): it owns the published listener ports for as long as the stack lives, and sends each
 * new connection to the newest manager task whose whole deployment serves. `docker stack
 * deploy` of a new file starts the new version's manager and groups beside the old ones
 * (update_config order: start-first); the front moves to the new manager as soon as it is
 * ready, and Swarm then stops the old tasks, which drain. A connection stays where it started,
 * and each version's manager routes only to its own replicas: no request crosses versions. */
#ifndef WD_FRONT_H
#define WD_FRONT_H

#include "engine/base/error.h"

#include <stddef.h>
#include <stdint.h>

struct wd_front_listener {
    const char *name;
    uint16_t port; /* published by the front, served by every manager on the same port */
};

struct wd_front_opts {
    const char *manager_host; /* the manager service's name: one address per task (dnsrr) */
    uint16_t manager_port;    /* where managers answer the status hello */
    const struct wd_front_listener *listeners;
    size_t nlisteners;
    unsigned poll_ms; /* how often the managers are asked (0: 250) */
};

/* wd_front_run - serve until SIGINT or SIGTERM. Returns 0, or <0 with *err (a port taken). */
int wd_front_run(const struct wd_front_opts *o, struct wd_error **err);

#endif
