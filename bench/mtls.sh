#!/usr/bin/env bash
# bench/mtls.sh [BUILD] - `[docker] mtls = true` figures (issue 10 item 5), not a test: the
# latency of one component call across containers with the data plane in mutual TLS against
# the same call in the clear, in one run:
#   plain  `weaver-docker up -d` of the shop app (4 groups, 1 replica each)
#   mtls   the same app and toml under another name with `mtls = true`
# Both deployments run side by side. The figure is the shop app's GET /callloop?n=N: N
# sequential Cart.Whoami calls from Main (its own container) to Cart (another), timed inside
# Main, so only the component call is measured (no HTTP, no listener proxy). Each: a warm-up of
# 200 calls, then BENCH_MTLS_N (5000) calls; BENCH_MTLS_REPS (5) repetitions, the two deployments
# back to back in alternating order: the median of each figure and the median of the
# per-repetition ratios. Also end-to-end GET /whoami through the listener (BENCH_LAT_N, 2000,
# python http.client on one keep-alive connection). Goal: call p50 with mtls <= 1.2x plain.
#
# Everything carries WEAVER_DOCKER_LABELS=org.weaver-docker.test=bench-<pid> and is removed on
# exit (apps bench-mtls-plain and bench-mtls-on; images are kept, as in bench/run.sh).
# Prints a table and key=value lines (mtls_*), the last one the goal; exits 1 when something
# could not be measured.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
SHOP=$ROOT/build/go/apps/shop
PY="python3 $ROOT/bench/bench.py"
REPS=${BENCH_MTLS_REPS:-5}
N=${BENCH_MTLS_N:-5000}
LAT_N=${BENCH_LAT_N:-2000}
PLAIN=bench-mtls-plain
MTLS=bench-mtls-on
GOAL=1.2

for f in "$WD" "$SHOP"; do
    [ -e "$f" ] || { echo "bench/mtls.sh: $f is missing; run 'make all apps' (BUILD=$BUILD)" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "bench/mtls.sh: needs the docker CLI" >&2; exit 1; }

TAG=bench-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
TMP=$(mktemp -d /tmp/wd-bench-mtls.XXXXXX)
export XDG_STATE_HOME=$TMP/state
mkdir -p "$XDG_STATE_HOME"
RES=$TMP/results
: >"$RES"
UP=()

T_START=$(date +%s)
LOAD=$(cut -d' ' -f1 /proc/loadavg)
log() { printf "mtls: [%3ds] %s\n" $(($(date +%s) - T_START)) "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    for app in "${UP[@]}"; do "$WD" down "$app" >>"$TMP/down.log" 2>&1; done
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" |
        xargs -r docker network rm >/dev/null 2>&1
    docker images -q --filter "label=org.weaver-docker.test=$TAG" | sort -u |
        xargs -r docker rmi -f >/dev/null 2>&1
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "mtls: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkconf() { # NAME PORT [EXTRA]
    cat >"$TMP/$1.toml" <<EOF
[serviceweaver]
name = "$1"
binary = "$SHOP"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]

[docker]
listeners.shop = {address = "127.0.0.1:$2"}
${3:-}
EOF
}

PP=$($PY freeport) MP=$($PY freeport)
while [ "$PP" = "$MP" ]; do MP=$($PY freeport); done
mkconf $PLAIN "$PP"
mkconf $MTLS "$MP" "mtls = true"
for app in $PLAIN $MTLS; do
    "$WD" down "$app" >/dev/null 2>&1 || true
    log "$app: weaver-docker up -d"
    UP+=("$app")
    if ! "$WD" up -d "$TMP/$app.toml" >"$TMP/$app.up" 2>&1; then
        echo "bench/mtls.sh: $app did not come up:" >&2
        tail -5 "$TMP/$app.up" >&2
        exit 1
    fi
done
grep -q ', mtls)' "$XDG_STATE_HOME/weaver-docker/$MTLS/deployer.log" ||
    { echo "bench/mtls.sh: $MTLS does not run with mtls" >&2; exit 1; }
PURL=http://127.0.0.1:$PP
MURL=http://127.0.0.1:$MP

loop() { # key url n: one /callloop, its figures into the results as KEY_{p50,p99,mean}
    local out f
    out=$(curl -sS --max-time 120 "$2/callloop?n=$3" 2>&1) || true
    case $out in
    n=*" mean_us="*) ;;
    *)
        echo "bench/mtls.sh: $1 /callloop?n=$3: $out" >&2
        return 1
        ;;
    esac
    echo "$1 $out" >>"$TMP/raw"
    for f in p50_us p99_us mean_us; do
        printf '%s_%s=%s\n' "$1" "${f%_us}" "$(sed -n "s/.* $f=\([0-9.]*\).*/\1/p" <<<"$out")" >>"$RES"
    done
}
http() { # key url: end-to-end GET /whoami through the listener
    local l
    l=$($PY lat --url "$2/whoami" -n "$LAT_N" --warmup 200)
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); k=sys.argv[2]
if d["errors"]: sys.exit("bench/mtls.sh: %s /whoami: %d errors" % (k, d["errors"]))
print("%s_http_p50=%s\n%s_http_p99=%s" % (k, d["p50_us"], k, d["p99_us"]))' "$l" "$1" >>"$RES"
}

log "warm-up: 200 calls each"
loop warm "$PURL" 200 && loop warm "$MURL" 200 || exit 1
for rep in $(seq 1 "$REPS"); do
    log "rep $rep/$REPS: /callloop n=$N, /whoami x$LAT_N"
    order="plain mtls"
    [ $((rep % 2)) = 0 ] && order="mtls plain"
    for who in $order; do
        url=$PURL
        [ "$who" = mtls ] && url=$MURL
        loop "$who" "$url" "$N" || exit 1
    done
    for who in $order; do
        url=$PURL
        [ "$who" = mtls ] && url=$MURL
        http "$who" "$url" || exit 1
    done
done
log "done measuring"

# ---- table and key=value lines ----
python3 - "$RES" "$GOAL" "$REPS" "$N" "$LAT_N" "$(nproc)" "$LOAD" <<'EOF'
import statistics, sys
d = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    d.setdefault(k, []).append(float(v))
goal, reps, n, latn, ncpu, load = float(sys.argv[2]), *sys.argv[3:8]
med = lambda k: statistics.median(d[k])
def ratio(f):  # median of the per-repetition ratios (each pair measured back to back)
    return statistics.median(m / p for m, p in zip(d["mtls_" + f], d["plain_" + f]))
rows = []
for f, what in (("p50", "Main -> Cart call p50"), ("p99", "Main -> Cart call p99"),
                ("mean", "Main -> Cart call mean"), ("http_p50", "GET /whoami p50 (end to end)"),
                ("http_p99", "GET /whoami p99 (end to end)")):
    r = ratio(f)
    g = v = ""
    if f == "p50":
        g, v = "<= %.1fx" % goal, ("met" if r <= goal else "MISSED")
    rows.append((what, "%.0f us" % med("mtls_" + f), "%.0f us" % med("plain_" + f), "%.2fx" % r, g, v))
print("mtls: the shop app with [docker] mtls = true; plain: the same without, side by side;")
print("calls: Cart.Whoami from Main across containers, timed in Main (/callloop, %s per run);" % n)
print("end to end: %s GETs of /whoami through the listener. Figures: median of %s runs, ratios:" % (latn, reps))
print("median of the runs' ratios, each pair back to back; %s CPUs, load average %s at start" % (ncpu, load))
print()
hdr = ("component call", "mtls", "plain", "ratio", "goal", "")
w = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)).rstrip())
print("  ".join("-" * x for x in w))
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
print("  ".join("-" * x for x in w))
def kv(key, f, what):
    print("%s=%.2fx (%s: %.0f us with mtls, %.0f us plain)" % (key, ratio(f), what, med("mtls_" + f), med("plain_" + f)))
kv("mtls_p50_ratio", "p50", "component call p50")
kv("mtls_p99_ratio", "p99", "component call p99")
kv("mtls_http_p50_ratio", "http_p50", "GET /whoami p50")
r = ratio("p50")
print("mtls_goal=mtls call p50 <= %.1fx plain: %s" % (goal, "met" if r <= goal else "MISSED"))
EOF
