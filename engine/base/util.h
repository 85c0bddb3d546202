/* engine/base/util.h - allocation, cleanup attributes, growable buffers. libc only: the shim
 * includes it too. Allocation failure aborts (we are a CLI and a PID 1, not a library). */
#ifndef WD_UTIL_H
#define WD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xrealloc(void *p, size_t n);
void *xcalloc(size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static inline void wd_freep(void *p) { free(*(void **)p); }
static inline void wd_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd); /* never retry on EINTR: the fd may already be reused */
}
#define autofree __attribute__((cleanup(wd_freep)))
#define autoclose __attribute__((cleanup(wd_closep)))
#define WD_STEAL(p) __extension__({ __typeof__(p) p_ = (p); (p) = NULL; p_; })
#define WD_STEAL_FD(fd) __extension__({ int fd_ = (fd); (fd) = -1; fd_; })
#define WD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A growable byte buffer with a hard cap. */
struct wd_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 = unlimited */
};
/* Append n bytes; returns 0, or -EMSGSIZE if the cap would be exceeded (buffer unchanged). */
int wd_buf_append(struct wd_buf *b, const void *p, size_t n);
int wd_buf_printf(struct wd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wd_buf_consume(struct wd_buf *b, size_t n); /* drop n bytes from the front */
void wd_buf_free(struct wd_buf *b);
/* Steal the data as a NUL-terminated string; the buffer becomes empty. Caller frees. */
char *wd_buf_steal_str(struct wd_buf *b);

/* Little-endian helpers for wire formats. */
static inline void wd_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void wd_put_u64le(uint8_t *p, uint64_t v)
{
    wd_put_u32le(p, (uint32_t)v);
    wd_put_u32le(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t wd_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t wd_get_u64le(const uint8_t *p)
{
    return (uint64_t)wd_get_u32le(p) | (uint64_t)wd_get_u32le(p + 4) << 32;
}

/* Monotonic clock in milliseconds / nanoseconds. */
int64_t wd_now_ms(void);
int64_t wd_now_ns(void);

/* Read a whole file (at most max bytes) into a NUL-terminated buffer. Returns 0 or -errno
 * (-EMSGSIZE if larger than max). Caller frees *out. Sets errno-style code only; no message. */
int wd_read_file(const char *path, size_t max, char **out, size_t *len);
/* Write @path as a whole or not at all (a temporary file, fsync, rename), mode 0600. */
struct wd_error;
int wd_write_file_atomic(const char *path, const void *data, size_t len, struct wd_error **err);

/* Hex-encode n bytes into out (2n+1 chars). */
void wd_hex(const uint8_t *p, size_t n, char *out);
/* Decode hex; returns number of bytes or -1 on bad input or overflow of outmax. */
ssize_t wd_unhex(const char *s, uint8_t *out, size_t outmax);
/* Base64 of n bytes, standard alphabet, padded (RFC 4648 §4). Caller frees. */
char *wd_base64(const uint8_t *p, size_t n);
/* Percent-encode every byte but RFC 3986's unreserved ones (for a URL's query). Caller frees. */
char *wd_url_escape(const char *s);

/* Fill buf with n random bytes from getrandom(2). Returns 0 or -errno. */
int wd_random(void *buf, size_t n);
/* A random id of 2*nbytes lowercase hex chars (nbytes <= 32). Caller frees. */
char *wd_random_hex(size_t nbytes);

/* Make the n (heap) strings unique: a name equal to an earlier one becomes "NAME-K" with the
 * smallest K >= 2 that no name has (the old string is freed). Two groups whose components share
 * their last two path elements ("a/x/Foo", "b/x/Foo") would otherwise get one container or
 * service name. Returns how many were renamed. */
size_t wd_unique_names(char **names, size_t n);

#endif
