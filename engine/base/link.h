/* engine/base/link.h - the shim link's wire constants and the few helpers every side needs: the
 * deployer (engine/deploy/rt_docker.c, engine/deploy/hostport.c), the compose manager (engine/deploy/rt_compose.c)
 * and the shim (images/shim/, which links libc only: so everything here is static inline and
 * uses nothing but <string.h>). The protocol is described in docs/design/shim-link.md.
 *
 *   offset size
 *   0      4    magic "WDL1"
 *   4      1    channel (below)
 *   5      1    argument: 'H' health (1 serving, 2 not serving); else 0
 *   6      2    zero
 *   8      32   the per-deployment token, raw
 *
 * Manager mode appends u16 length + name (and for 'A' u16 length + address) after byte 40. */
#ifndef WD_ENGINE_LINK_H
#define WD_ENGINE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define WD_LINK_MAGIC "WDL1"
#define WD_LINK_TOKEN_LEN 32
#define WD_LINK_HELLO_LEN 40
#define WD_LINK_ACK 1 /* the one-byte answer to an accepted hello */

enum wd_link_chan {
    WD_LINK_W = 'W', /* weaveletControl: the deployer is the RPC client */
    WD_LINK_D = 'D', /* deployerControl: parked until the weavelet dials its deployer */
    WD_LINK_H = 'H', /* health push: argument 1 or 2, answered and closed */
    WD_LINK_A = 'A', /* manager mode: a shim registers (the shim dials) */
    WD_LINK_P = 'P', /* host port: parked until the app connects to localhost:PORT in its
                        container; then the shim sends the port (u16, big-endian) and relays */
    WD_LINK_S = 'S', /* manager mode: status, no token needed (the front, `manage --health`):
                        answered with 1 byte (1 ready, 0 not) + u64 big-endian stamp, closed */
};

enum { WD_LINK_SERVING = 1, WD_LINK_NOT_SERVING = 2 };

#define WD_LINK_MAX_HOST_PORTS 16 /* [docker] host_ports, WEAVER_SHIM_HOST_PORTS */

static inline uint16_t wd_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline void wd_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Compare in time that depends on n only. */
static inline bool wd_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d = (uint8_t)(d | (x[i] ^ y[i]));
    return d == 0;
}

/* The value of one hex digit (either case), or -1. */
static inline int wd_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode the hex string s (len chars) into out; returns the byte count, or -1 for an odd
 * length, a non-hex character or more than outmax bytes. */
static inline ssize_t wd_hex_decode(const char *s, size_t len, uint8_t *out, size_t outmax)
{
    if (len % 2 != 0 || len / 2 > outmax)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = wd_hex_digit(s[2 * i]), lo = wd_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (ssize_t)(len / 2);
}

static inline void wd_link_hello(uint8_t h[WD_LINK_HELLO_LEN], char chan, uint8_t arg,
                                 const uint8_t token[WD_LINK_TOKEN_LEN])
{
    memcpy(h, WD_LINK_MAGIC, 4);
    h[4] = (uint8_t)chan;
    h[5] = arg;
    h[6] = h[7] = 0;
    memcpy(h + 8, token, WD_LINK_TOKEN_LEN);
}

/* The form of a 40-byte hello (not its token): magic, a channel of chans, zero padding, and the
 * argument byte (1 or 2 for 'H', else 0). */
static inline bool wd_link_hello_form(const uint8_t h[WD_LINK_HELLO_LEN], const char *chans)
{
    char c = (char)h[4];
    if (memcmp(h, WD_LINK_MAGIC, 4) != 0 || h[6] || h[7] || c == 0 || !strchr(chans, c))
        return false;
    if (c == WD_LINK_H)
        return h[5] == WD_LINK_SERVING || h[5] == WD_LINK_NOT_SERVING;
    return h[5] == 0;
}

#endif
