/* engine/base/error.h - the error convention (docs/design/errors.md).
 * A function that can fail returns 0 or a negative errno and sets *err exactly once. */
#ifndef WD_ERROR_H
#define WD_ERROR_H

struct wd_error {
    int errnum; /* errno value, always > 0 */
    char *msg;  /* "outer: inner: cause"; no trailing newline */
};

/* wd_err - set *err to a new error with errnum and the formatted message; returns -errnum. */
int wd_err(struct wd_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* wd_err_sys - like wd_err, appending ": strerror(errnum)". */
int wd_err_sys(struct wd_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* wd_err_wrap - prefix the message of an existing *err with "ctx: "; returns -(*err)->errnum. */
int wd_err_wrap(struct wd_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* wd_err_free - free *err (NULL-safe) and set it to NULL. */
void wd_err_free(struct wd_error **err);

#define autoerr __attribute__((cleanup(wd_err_free)))

#endif
