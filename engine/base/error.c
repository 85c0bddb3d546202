#include "engine/base/error.h"
#include "engine/base/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set(struct wd_error **err, int errnum, char *msg)
{
    if (errnum <= 0)
        errnum = EIO;
    if (err == NULL) {
        free(msg);
        return -errnum;
    }
    if (*err != NULL) { /* set exactly once: keep the first, it is the cause */
        free(msg);
        return -(*err)->errnum;
    }
    struct wd_error *e = xmalloc(sizeof *e);
    e->errnum = errnum;
    e->msg = msg;
    *err = e;
    return -errnum;
}

int wd_err(struct wd_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    return set(err, errnum, msg);
}

int wd_err_sys(struct wd_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *head = xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = xasprintf("%s: %s", head, strerror(errnum));
    free(head);
    return set(err, errnum, msg);
}

int wd_err_wrap(struct wd_error **err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return -EIO;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = msg;
    return -(*err)->errnum;
}

void wd_err_free(struct wd_error **err)
{
    if (err == NULL || *err == NULL)
        return;
    free((*err)->msg);
    free(*err);
    *err = NULL;
}
