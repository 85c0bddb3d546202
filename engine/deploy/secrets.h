/* engine/deploy/secrets.h - copies of the [docker] secrets that only the container user can read,
 * for `up` (bind-mounted at /run/secrets/NAME) and for the compose file (its `secrets:` files). */
#ifndef WD_ENGINE_SECRETS_H
#define WD_ENGINE_SECRETS_H

struct wd_config;
struct wd_error;

/* wd_secrets_stage - copy every [docker] secret of cfg to DIR/NAME, mode 0400, owned by the
 * container user (WD_IMAGE_UID) when we run as root (otherwise the engine maps ids itself, as
 * rootless engines do, and the owner's copy is what it can read). DIR is made if missing, mode
 * 0711: the container user can traverse it, not list it. Each copy replaces an older one
 * atomically. Without secrets nothing is done. On error (errno vocabulary, one line) the copies
 * made so far are removed again. */
int wd_secrets_stage(const struct wd_config *cfg, const char *dir, struct wd_error **err);

/* wd_secrets_remove - remove the copies of cfg's secrets from DIR, then DIR if it is empty.
 * NULL dir: nothing. */
void wd_secrets_remove(const struct wd_config *cfg, const char *dir);

#endif
