/* engine/deploy/metrics.h - a deployment's metric store: the GetMetrics replies of every replica
 * (weaver-protocol.md, GetMetrics), rendered as Prometheus text or as JSON for the CLI.
 * Single-threaded: no locking. */
#ifndef WD_ENGINE_METRICS_H
#define WD_ENGINE_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct wd_buf;

/* Caps on what outside bytes can make the store hold; beyond them an update fails (-EPROTO). */
#define WD_METRICS_MAX_REPLICAS 64          /* live replicas */
#define WD_METRICS_MAX_GONE 64              /* gone replicas kept; the oldest is then dropped */
#define WD_METRICS_MAX_DEFS 4096            /* live defs per replica; also retired series */
#define WD_METRICS_MAX_LABELS 64            /* labels per def */
#define WD_METRICS_MAX_BUCKETS 1024         /* histogram counts (bounds + 1) */
#define WD_METRICS_MAX_STRING 4096          /* bytes in a name, help, label key or value */
#define WD_METRICS_MAX_REPLICA_BYTES (16u << 20) /* held for one replica key */
#define WD_METRICS_MAX_BYTES (256u << 20)   /* held in all */

struct wd_metrics;

/* wd_metrics_new - an empty store, owned by the caller (wd_metrics_free). Never NULL. */
struct wd_metrics *wd_metrics_new(void);
/* wd_metrics_free - free @m and everything in it. NULL-safe. */
void wd_metrics_free(struct wd_metrics *m);

/* wd_metrics_update - apply one packed GetMetricsReply (@pb, @len; borrowed) from replica
 * @replica (a stable key such as "cart/0/1a2b3c4d") of group @group (short group name); both
 * strings are borrowed and copied. The protocol is incremental per weavelet: each MetricDef comes
 * once with an id, later replies carry MetricValues by id (absolute values: a counter's or
 * gauge's value, a histogram's sum in value and its per-bucket counts, len(counts) ==
 * len(bounds)+1). A reply for a key marked gone starts a fresh stream (see
 * wd_metrics_replica_gone). The store is changed only on success.
 * Returns 0, -EINVAL for an empty or over-long @replica or @group, or -EPROTO: bytes that do not
 * decode, a def id sent twice, a value for an unknown id, a bad type, counts that do not fit the
 * bounds, bounds not finite and increasing, a counter value negative or not finite, invalid
 * UTF-8, a duplicate label key, or any WD_METRICS_MAX_* cap exceeded. */
int wd_metrics_update(struct wd_metrics *m, const char *replica, const char *group,
                      const uint8_t *pb, size_t len);

/* wd_metrics_replica_gone - the replica @replica (borrowed) is gone. Its counters and
 * histograms keep their last values (sums never go backwards); its gauges are no longer shown.
 * If the key comes back, its old counters and histograms are folded into a per-key "retired"
 * total that is rendered with the new stream. Unknown keys are ignored. */
void wd_metrics_replica_gone(struct wd_metrics *m, const char *replica);

/* wd_metrics_prometheus - append the text exposition format 0.0.4 to @out: one series per
 * (metric, labels, replica), with labels replica="KEY",group="GROUP" added; names sanitized to
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label keys to [a-zA-Z_][a-zA-Z0-9_]*, a sanitized key that collides
 * with another key of the metric or with replica/group (or le for histograms) gets the smallest
 * free suffix "_N" (N >= 2; keys that were valid as sent keep their name); label values escaped;
 * HELP (when not empty) and TYPE once per name; histograms as cumulative _bucket{le=...} with
 * le="+Inf", then _sum and _count. A name keeps the type most of its series have (ties: counter,
 * gauge, histogram); series of another type are skipped, as are series that collide after
 * sanitizing with an incompatible one (compatible ones are summed). @filter: NULL, or a substring
 * the metric's name (as sent or sanitized) must contain. If @out's cap is reached, @out is left
 * as it was. */
void wd_metrics_prometheus(struct wd_metrics *m, const char *filter, struct wd_buf *out);

/* wd_metrics_json - append {"metrics":[{"name","type","help","labels":{..},"replicas":N,
 * "value":x}, ...]} to @out: series with identical name and labels (as sent) summed over
 * replicas and retired totals (gauges too), sorted by name then labels. Histograms add
 * "bounds":[..], "counts":[..] (per bucket, not cumulative), "count":n and "sum":x (value is the
 * sum too). Types and histogram bounds that disagree with the name's type (chosen as for
 * Prometheus) or with the series' first bounds are skipped. @filter as above. If @out's cap is
 * reached, @out is left as it was. */
void wd_metrics_json(struct wd_metrics *m, const char *filter, struct wd_buf *out);

struct wd_metrics_stats {
    size_t replicas; /* replica keys held, live or gone */
    size_t defs;     /* live defs */
    size_t series;   /* live defs plus retired totals */
    size_t bytes;    /* approximate heap bytes held */
};
void wd_metrics_stats(struct wd_metrics *m, struct wd_metrics_stats *st);

#endif
