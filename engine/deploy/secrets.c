/* engine/deploy/secrets.c - see secrets.h. Moved here from cmd/up.c so that `compose` stages its
 * copies the same way. */
#include "engine/deploy/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/weaver/config.h"
#include "engine/base/error.h"
#include "engine/docker/image.h"
#include "engine/base/util.h"

#define SECRET_MAX_BYTES (1u << 20)

void wd_secrets_remove(const struct wd_config *cfg, const char *dir)
{
    if (dir == NULL)
        return;
    for (size_t i = 0; i < cfg->nsecrets; i++) {
        autofree char *p = xasprintf("%s/%s", dir, cfg->secrets[i].name);
        (void)unlink(p);
    }
    (void)rmdir(dir);
}

int wd_secrets_stage(const struct wd_config *cfg, const char *dir, struct wd_error **err)
{
    if (cfg->nsecrets == 0)
        return 0;
    if (mkdir(dir, 0711) < 0 && errno != EEXIST)
        return wd_err(err, errno, "mkdir %s: %s", dir, strerror(errno));
    (void)chmod(dir, 0711); /* the container user must traverse it, not list it */
    for (size_t i = 0; i < cfg->nsecrets; i++) {
        const struct wd_secret_cfg *sc = &cfg->secrets[i];
        autofree char *data = NULL;
        size_t len = 0;
        int r = wd_read_file(sc->path, SECRET_MAX_BYTES, &data, &len);
        if (r < 0) {
            wd_secrets_remove(cfg, dir);
            return wd_err(err, -r, "%s: [docker] secrets.%s: cannot read %s: %s", cfg->path,
                          sc->name, sc->path, strerror(-r));
        }
        autofree char *dst = xasprintf("%s/%s", dir, sc->name);
        autofree char *tmp = xasprintf("%s/.%s.tmp", dir, sc->name);
        (void)unlink(tmp);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len;
        if (ok && geteuid() == 0 && fchown(fd, WD_IMAGE_UID, WD_IMAGE_UID) < 0)
            ok = false;
        int e = errno;
        if (fd >= 0 && close(fd) < 0 && ok) {
            ok = false;
            e = errno;
        }
        if (!ok || rename(tmp, dst) < 0) {
            e = ok ? errno : e;
            (void)unlink(tmp);
            wd_secrets_remove(cfg, dir);
            return wd_err(err, e, "stage secret %s in %s: %s", sc->name, dir, strerror(e));
        }
    }
    return 0;
}
