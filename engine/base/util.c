#include "engine/base/util.h"
#include "engine/base/error.h"
#include "engine/base/link.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
    static const char msg[] = "weaver-docker: out of memory\n";
    (void)!write(2, msg, sizeof msg - 1);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *xzalloc(size_t n) { return xcalloc(1, n); }

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (p == NULL)
        oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        oom();
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        oom();
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

static int reserve(struct wd_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -EMSGSIZE;
    size_t need = b->len + extra;
    if (b->max && need > b->max)
        return -EMSGSIZE;
    if (need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int wd_buf_append(struct wd_buf *b, const void *p, size_t n)
{
    int r = reserve(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int wd_buf_printf(struct wd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    int r = wd_buf_append(b, s, strlen(s));
    free(s);
    return r;
}

void wd_buf_consume(struct wd_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = 0;
}

void wd_buf_free(struct wd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *wd_buf_steal_str(struct wd_buf *b)
{
    if (b->data == NULL)
        return xstrdup("");
    char *s = (char *)b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

int64_t wd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t wd_now_ms(void) { return wd_now_ns() / 1000000; }

int wd_read_file(const char *path, size_t max, char **out, size_t *len)
{
    /* O_NONBLOCK: a FIFO or a terminal named by mistake fails instead of hanging us */
    autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct wd_buf b = {.max = max};
    uint8_t tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            wd_buf_free(&b);
            return -e;
        }
        if (n == 0)
            break;
        if (wd_buf_append(&b, tmp, (size_t)n) < 0) {
            wd_buf_free(&b);
            return -EMSGSIZE;
        }
    }
    size_t l = b.len;
    *out = wd_buf_steal_str(&b);
    if (len)
        *len = l;
    return 0;
}

void wd_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

ssize_t wd_unhex(const char *s, uint8_t *out, size_t outmax)
{
    return wd_hex_decode(s, strlen(s), out, outmax);
}

char *wd_base64(const uint8_t *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = a[v >> 18];
        *o++ = a[(v >> 12) & 63];
        *o++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? a[v & 63] : '=';
    }
    *o = 0;
    return out;
}

char *wd_url_escape(const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = xmalloc(3 * strlen(s) + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = digits[*p >> 4];
            *o++ = digits[*p & 15];
        }
    }
    *o = 0;
    return out;
}

int wd_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

char *wd_random_hex(size_t nbytes)
{
    uint8_t raw[32];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (wd_random(raw, nbytes) < 0)
        abort(); /* getrandom cannot fail on Linux >= 3.17 once the pool is ready */
    char *out = xmalloc(2 * nbytes + 1);
    wd_hex(raw, nbytes, out);
    return out;
}

static bool name_taken(char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

size_t wd_unique_names(char **names, size_t n)
{
    size_t renamed = 0;
    for (size_t i = 1; i < n; i++) {
        if (!name_taken(names, i, names[i]))
            continue;
        for (unsigned k = 2;; k++) {
            char *c = xasprintf("%s-%u", names[i], k);
            if (!name_taken(names, n, c)) {
                free(names[i]);
                names[i] = c;
                renamed++;
                break;
            }
            free(c);
        }
    }
    return renamed;
}

int wd_write_file_atomic(const char *path, const void *data, size_t len, struct wd_error **err)
{
    autofree char *tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); /* it holds a secret */
    if (fd < 0)
        return wd_err_sys(err, errno, "create %s", tmp);
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return wd_err_sys(err, e, "write %s", tmp);
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return wd_err_sys(err, e, "write %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return wd_err_sys(err, e, "rename %s to %s", tmp, path);
    }
    return 0;
}
