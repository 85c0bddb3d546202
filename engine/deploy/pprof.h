/* engine/deploy/pprof.h - merge pprof profiles (the GetProfile replies of an app's replicas) into
 * one gzipped profile that `go tool pprof` reads, for `weaver-docker profile`. */
#ifndef WD_ENGINE_PPROF_H
#define WD_ENGINE_PPROF_H

#include <stddef.h>
#include <stdint.h>

struct wd_buf;
struct wd_error;

/* Caps on what outside bytes can make a merge hold. */
#define WD_PPROF_MAX_DECODED (64u << 20) /* one part, decompressed */
#define WD_PPROF_UNPACK_FACTOR 16        /* decoded messages: at most 16x the wire bytes + 1 MiB */
#define WD_PPROF_MAX_MEMORY (1u << 30)   /* decoded messages of all parts together */
#define WD_PPROF_REPLICA_KEY "replica"   /* the label every merged sample gets */

/* One replica's profile: @data/@len (borrowed), gzipped or not; @label (borrowed) names it. */
struct wd_pprof_part {
    const uint8_t *data;
    size_t len;
    const char *label;
};

/* wd_pprof_merge - merge @n profiles into one gzipped pprof, appended to @out (its max applies).
 * Every sample gets the string label "replica" = its part's label (replacing one it had). An
 * empty part (len 0) or one with no sample types is unusable; a usable part whose sample types
 * (type/unit strings, in order) differ from the first usable one's is skipped. Both are counted
 * in *skipped (may be NULL). Mapping, location and function ids and string indexes are remapped
 * so the parts never collide; time_nanos is the earliest, duration_nanos the longest;
 * period_type, period, drop/keep_frames and default_sample_type come from the first usable part;
 * comments are concatenated. Everything borrowed; @out and *skipped are written only on success.
 * Returns 0, or <0 with *err set (its message names the part's label):
 *   -EPROTO   a part does not gunzip or decode, or an id or string index is out of range
 *   -EMSGSIZE a part over WD_PPROF_MAX_DECODED decompressed, decoded messages over the
 *             WD_PPROF_UNPACK_FACTOR / WD_PPROF_MAX_MEMORY budget, or @out over its max
 *   -ENODATA  no usable part (n == 0, or every part empty or without sample types) */
int wd_pprof_merge(const struct wd_pprof_part *parts, size_t n, size_t *skipped, struct wd_buf *out,
                   struct wd_error **err);

#endif
