#!/usr/bin/env bash
# bench/hostports.sh [BUILD] - `[docker] host_ports` figures (issue 17), not a test: latency
# p50/p99/mean and throughput of a loop of `SELECT 1` to a PostgreSQL on the host's loopback,
# from the pgstore app's Rows component (GET /pingloop: the loop runs inside Rows, so only the
# database round trip is timed) in one run:
#   host_ports  `weaver-docker up -d` (containers), dsn localhost:PGPORT, host_ports = [PGPORT]:
#               app -> shim (container loopback) -> 'P' link -> deployer -> 127.0.0.1:PGPORT
#   direct      the same binary and toml in single-process mode on the host
#               (SERVICEWEAVER_CONFIG=toml pgstore): app -> 127.0.0.1:PGPORT
# Each: a warm-up of 200 queries, then c=1 (BENCH_HP_N1 queries, 5000) and c=8 (BENCH_HP_N8,
# 20000) goroutines, BENCH_REPS (3) repetitions interleaved (each pair back to back): the median
# of each figure, and the median of the per-repetition ratios. Goal: p50 at
# c=1 (one request-response at a time) <= 1.3x direct.
#
# Starts its own throwaway PostgreSQL (temp dir, 127.0.0.1, free port; needs `apt-get install
# postgresql` and runs it as the postgres user), removed on exit with everything else (labels
# WEAVER_DOCKER_LABELS=org.weaver-docker.test=bench-<pid>, app bench-pgstore, its image).
# Prints a table and key=value lines (hostports_*), the last one the goal; exits 0 when
# PostgreSQL is not installed (hostports_skipped=...), 1 when something could not be measured.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
PGSTORE=$ROOT/build/go/apps/pgstore
PY="python3 $ROOT/bench/bench.py"
REPS=${BENCH_REPS:-3}
N1=${BENCH_HP_N1:-5000}
N8=${BENCH_HP_N8:-20000}
APP=bench-pgstore
GOAL=1.3

for f in "$WD" "$PGSTORE"; do
    [ -e "$f" ] || { echo "bench/hostports.sh: $f is missing; run 'make all apps' (BUILD=$BUILD)" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "bench/hostports.sh: needs the docker CLI" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || ! id postgres >/dev/null 2>&1; then
    echo "hostports_skipped=PostgreSQL server is not installed (apt-get install postgresql)"
    exit 0
fi

TAG=bench-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
TMP=$(mktemp -d /tmp/wd-bench-hp.XXXXXX)
export XDG_STATE_HOME=$TMP/state
mkdir -p "$XDG_STATE_HOME"
PGDIR=$(mktemp -d /tmp/wd-bench-pg.XXXXXX)
RES=$TMP/results
: >"$RES"
SINGLE_PID=
UP=0

T_START=$(date +%s)
LOAD=$(cut -d' ' -f1 /proc/loadavg)
log() { printf "hostports: [%3ds] %s\n" $(($(date +%s) - T_START)) "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    if [ -n "$SINGLE_PID" ]; then
        kill -TERM "$SINGLE_PID" 2>/dev/null
        wait "$SINGLE_PID" 2>/dev/null
    fi
    [ "$UP" = 1 ] && "$WD" down --rmi "$APP" >"$TMP/down.log" 2>&1
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" |
        xargs -r docker network rm >/dev/null 2>&1
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$PGDIR"
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "hostports: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- a throwaway PostgreSQL on 127.0.0.1 (never the system's service) ----
chmod 755 "$PGDIR"
chown postgres "$PGDIR"
PGPORT=$($PY freeport)
log "PostgreSQL on 127.0.0.1:$PGPORT ($PGBIN), temp $TMP, labels $WEAVER_DOCKER_LABELS"
if ! runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust >"$TMP/initdb.log" 2>&1 ||
    ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGDIR" start >"$TMP/pg_ctl.log" 2>&1; then
    echo "bench/hostports.sh: PostgreSQL did not start: $(tail -3 "$TMP/initdb.log" "$PGDIR/server.log" 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
fi

# ---- one toml for both: [docker] with host_ports, [single], the dsn at localhost:PGPORT ----
DP=$($PY freeport) SP=$($PY freeport)
while [ "$SP" = "$DP" ] || [ "$SP" = "$PGPORT" ] || [ "$DP" = "$PGPORT" ]; do SP=$($PY freeport); DP=$($PY freeport); done
cat >"$TMP/weaver.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$PGSTORE"

[docker]
listeners.store = {address = "127.0.0.1:$DP"}
host_ports = [$PGPORT]

[single]
listeners.store = {address = "127.0.0.1:$SP"}

["example.com/pgstore/Rows"]
dsn = "postgres://postgres:x@localhost:$PGPORT/postgres?sslmode=disable"
EOF

wait_ping() { # url: until /ping answers pong (Rows reached the database), 60 s at most
    local i
    for i in $(seq 1 600); do
        [ "$(curl -sS --max-time 5 "$1/ping" 2>/dev/null)" = pong ] && return 0
        sleep 0.1
    done
    return 1
}

HURL=http://127.0.0.1:$DP
DURL=http://127.0.0.1:$SP
"$WD" down --rmi "$APP" >/dev/null 2>&1 || true
log "host_ports: weaver-docker up -d (builds the image)"
UP=1
if ! "$WD" up -d "$TMP/weaver.toml" >"$TMP/up.log" 2>&1 || ! wait_ping "$HURL"; then
    echo "bench/hostports.sh: $APP under weaver-docker did not answer /ping:" >&2
    tail -5 "$TMP/up.log" >&2
    "$WD" logs "$APP" 2>/dev/null | tail -5 >&2
    exit 1
fi
log "direct: SERVICEWEAVER_CONFIG=weaver.toml pgstore (single process)"
(cd "$TMP" && SERVICEWEAVER_CONFIG=$TMP/weaver.toml exec "$PGSTORE") >"$TMP/single.log" 2>&1 &
SINGLE_PID=$!
if ! wait_ping "$DURL"; then
    echo "bench/hostports.sh: $APP in single-process mode did not answer /ping:" >&2
    tail -5 "$TMP/single.log" >&2
    exit 1
fi

loop() { # key url n c: one /pingloop, its figures into the results as KEY_c{C}_{p50,p99,mean,qps}
    local out f
    out=$(curl -sS --max-time 60 "$2/pingloop?n=$3&c=$4" 2>&1) || true
    case $out in
    n=*" qps="*) ;;
    *)
        echo "bench/hostports.sh: $1 /pingloop?n=$3&c=$4: $out" >&2
        return 1
        ;;
    esac
    echo "$1 $out" >>"$TMP/raw"
    for f in p50_us p99_us mean_us qps; do
        printf '%s_c%s_%s=%s\n' "$1" "$4" "${f%_us}" "$(sed -n "s/.* $f=\([0-9.]*\).*/\1/p" <<<"$out")" >>"$RES"
    done
}

log "warm-up: 200 queries each"
loop warm "$HURL" 200 8 && loop warm "$DURL" 200 8 || exit 1
for rep in $(seq 1 "$REPS"); do
    log "rep $rep/$REPS: c=1 n=$N1, c=8 n=$N8"
    order="hp direct"
    [ $((rep % 2)) = 0 ] && order="direct hp"
    for c in 1 8; do
        n=$N1
        [ $c = 8 ] && n=$N8
        for who in $order; do
            url=$HURL
            [ "$who" = direct ] && url=$DURL
            loop "$who" "$url" "$n" "$c" || exit 1
        done
    done
done
log "done measuring"

# ---- table and key=value lines ----
python3 - "$RES" "$GOAL" "$REPS" "$N1" "$N8" "$PGPORT" "$(nproc)" "$LOAD" <<'EOF'
import statistics, sys
d = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    d.setdefault(k, []).append(float(v))
goal, reps, n1, n8, port, ncpu, load = float(sys.argv[2]), *sys.argv[3:9]
med = lambda k: statistics.median(d[k])
def ratio(c, f):  # median of the per-repetition ratios (each pair measured back to back)
    return statistics.median(h / x for h, x in zip(d["hp_c%s_%s" % (c, f)], d["direct_c%s_%s" % (c, f)]))
rows = []
for c, n in (("1", n1), ("8", n8)):
    for f, unit in (("p50", "us"), ("p99", "us"), ("mean", "us"), ("qps", "/s")):
        hp, dr = med("hp_c%s_%s" % (c, f)), med("direct_c%s_%s" % (c, f))
        r = ratio(c, f)
        g = v = ""
        if c == "1" and f == "p50":
            g, v = "<= %.1fx" % goal, ("met" if r <= goal else "MISSED")
        rows.append(("c=%s n=%s %s" % (c, n, f if f == "qps" else f + " latency"),
                     "%.0f %s" % (hp, unit), "%.0f %s" % (dr, unit), "%.2fx" % r, g, v))
    rows.append(None)
print("host_ports: Rows in its container -> shim -> 'P' link -> deployer -> 127.0.0.1:%s;" % port)
print("direct: the same binary and toml in single-process mode on the host -> 127.0.0.1:%s" % port)
print("(latency of single queries timed inside Rows; figures: median of %s runs, ratios: median of" % reps)
print(" the runs' ratios, each pair run back to back; %s CPUs, load average %s at start)" % (ncpu, load))
print()
hdr = ("SELECT 1 from Rows", "host_ports", "direct", "ratio", "goal", "")
real = [r for r in rows if r] + [hdr]
w = [max(len(r[i]) for r in real) for i in range(len(hdr))]
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)).rstrip())
print("  ".join("-" * x for x in w))
for r in rows[:-1]:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() if r else "")
print("  ".join("-" * x for x in w))
def kv(key, c, f, unit, what):
    hp, dr = med("hp_c%s_%s" % (c, f)), med("direct_c%s_%s" % (c, f))
    print("%s=%.2fx (%s at c=%s: %.0f %s through host_ports, %.0f %s direct)"
          % (key, ratio(c, f), what, c, hp, unit, dr, unit))
kv("hostports_p50_ratio", "1", "p50", "us", "p50")
kv("hostports_p99_ratio", "1", "p99", "us", "p99")
kv("hostports_c8_p50_ratio", "8", "p50", "us", "p50")
kv("hostports_c8_qps_ratio", "8", "qps", "/s", "queries/s")
r1 = ratio("1", "p50")
print("hostports_goal=host_ports p50 <= %.1fx direct: %s" % (goal, "met" if r1 <= goal else "MISSED"))
EOF
