#!/usr/bin/env bash
# bench/listener.sh [BUILD] - listener throughput (issue 10), not a test: requests per second
# that wrk gets at a fixed concurrency from the shop app's GET /healthz (answered by Main
# itself, so only the path to it is measured), in one run:
#   ours    `weaver-docker up -d` with `listeners.shop = {address = "127.0.0.1:0"}`:
#           wrk -> 127.0.0.1:PORT -> the deployer's relay (engine/deploy/proxy.c) -> container
#   direct  the same container's listener at its bridge address (the container's address
#           from `ps --json`, the port from the app's own "shop ready addr=..." log line):
#           wrk -> container
# wrk -t BENCH_LS_THREADS (2) -c BENCH_LS_CONNS (32) -d BENCH_LS_SECS (10), after a 2 s warm-up
# of each, BENCH_REPS (3) pairs interleaved (the order alternating): the median of each
# figure, and the median of the per-pair ratios. Goal: ours >= 0.9x direct requests/s.
#
# Needs wrk (apt-get install wrk; `make bench` installs it). Everything it creates carries
# WEAVER_DOCKER_LABELS=org.weaver-docker.test=bench-<pid> (app bench-listener) and is removed
# on exit, its image too. Prints a table and key=value lines (listener_*), the last one the
# goal; exits 0 without wrk (listener_skipped=...), 1 when something could not be measured.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
SHOP=$ROOT/build/go/apps/shop
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_LS_THREADS:-2}
CONNS=${BENCH_LS_CONNS:-32}
SECS=${BENCH_LS_SECS:-10}
APP=bench-listener
GOAL=0.9

for f in "$WD" "$SHOP"; do
    [ -e "$f" ] || { echo "bench/listener.sh: $f is missing; run 'make all apps' (BUILD=$BUILD)" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "bench/listener.sh: needs the docker CLI" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
    echo "listener_skipped=wrk is not installed (apt-get install wrk)"
    exit 0
fi

TAG=bench-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
TMP=$(mktemp -d /tmp/wd-bench-ls.XXXXXX)
export XDG_STATE_HOME=$TMP/state
mkdir -p "$XDG_STATE_HOME"
UP=0
T_START=$(date +%s)
LOAD=$(cut -d' ' -f1 /proc/loadavg)
log() { printf "listener: [%3ds] %s\n" $(($(date +%s) - T_START)) "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    [ "$UP" = 1 ] && "$WD" down --rmi "$APP" >"$TMP/down.log" 2>&1
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" |
        xargs -r docker network rm >/dev/null 2>&1
    docker images -q --filter "label=org.weaver-docker.test=$TAG" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "listener: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$TMP/weaver.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$SHOP"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
EOF

log "up -d $APP"
"$WD" up -d "$TMP/weaver.toml" >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; exit 1; }
UP=1
ps_json=$("$WD" ps --json "$APP")
OURS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["listeners"]["shop"])' "$ps_json")
CIP=$(python3 -c '
import json,sys
r=[x for x in json.loads(sys.argv[1])[0]["replicas"] if x["group"]=="weaver.Main"]
print(r[0]["address"] if len(r)==1 else "")' "$ps_json")
# The app's own line "shop ready addr=[::]:PORT proxy=...": the port it listens on in its container.
CPORT=
for _ in $(seq 1 50); do
    CPORT=$("$WD" logs "$APP" 2>/dev/null | sed -n 's/.*shop ready.*addr="\{0,1\}[^ ]*:\([0-9][0-9]*\)"\{0,1\} .*/\1/p' | head -n 1)
    [ -n "$CPORT" ] && break
    sleep 0.2
done
[ -n "$CIP" ] && [ -n "$CPORT" ] || { echo "bench/listener.sh: no address for Main (ip '$CIP', port '$CPORT')" >&2; exit 1; }
DIRECT=$CIP:$CPORT
log "ours http://$OURS, direct http://$DIRECT (Main's container)"
for u in "$OURS" "$DIRECT"; do
    curl -fsS --max-time 5 "http://$u/healthz" >/dev/null || { echo "bench/listener.sh: http://$u/healthz does not answer" >&2; exit 1; }
done

run_wrk() { # ADDR SECS -> "rps p50_us p99_us errors"
    wrk -t "$THREADS" -c "$CONNS" -d "${2}s" --latency "http://$1/healthz" 2>&1 | python3 -c '
import re, sys
t = sys.stdin.read()
def us(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)] if m else -1
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M)
p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", t))
err += int(re.search(r"Non-2xx or 3xx responses: (\d+)", t).group(1)) if "Non-2xx" in t else 0
if not rps:
    sys.exit("wrk: " + t.strip().replace("\n", " ")[-300:])
print(rps.group(1), us(p50.group(1)) if p50 else -1, us(p99.group(1)) if p99 else -1, err)'
}

log "warm-up (2 s each)"
run_wrk "$OURS" 2 >/dev/null
run_wrk "$DIRECT" 2 >/dev/null
RES=$TMP/results
: >"$RES"
for rep in $(seq 1 "$REPS"); do
    order="ours direct"
    [ $((rep % 2)) = 0 ] && order="direct ours"
    for which in $order; do
        addr=$OURS
        [ $which = direct ] && addr=$DIRECT
        log "rep $rep/$REPS: $which (wrk -t$THREADS -c$CONNS -d${SECS}s)"
        read -r rps p50 p99 errs <<<"$(run_wrk "$addr" "$SECS")"
        echo "$which $rep $rps $p50 $p99 $errs" >>"$RES"
    done
done
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)

python3 - "$RES" "$GOAL" "$THREADS" "$CONNS" "$SECS" "$LOAD" "$LOAD_END" <<'EOF'
import statistics, sys
res, goal = sys.argv[1], float(sys.argv[2])
threads, conns, secs, load0, load1 = sys.argv[3:8]
d = {"ours": {}, "direct": {}}
for line in open(res):
    w, rep, rps, p50, p99, err = line.split()
    d[w][int(rep)] = (float(rps), float(p50), float(p99), int(err))
reps = sorted(set(d["ours"]) & set(d["direct"]))
med = lambda w, i: statistics.median(d[w][r][i] for r in reps)
ratios = [d["ours"][r][0] / d["direct"][r][0] for r in reps]
ratio = statistics.median(ratios)
print("listener throughput: wrk -t%s -c%s -d%ss GET /healthz, median of %d interleaved pairs "
      "(load %s -> %s)" % (threads, conns, secs, len(reps), load0, load1))
print("%-30s %12s %12s %8s" % ("", "ours", "direct", "ratio"))
print("%-30s %12.0f %12.0f %7.2fx" % ("requests/s", med("ours", 0), med("direct", 0), ratio))
print("%-30s %10.0f us %10.0f us" % ("latency p50", med("ours", 1), med("direct", 1)))
print("%-30s %10.0f us %10.0f us" % ("latency p99", med("ours", 2), med("direct", 2)))
print("%-30s %12d %12d" % ("errors (all reps)", sum(d["ours"][r][3] for r in reps),
                            sum(d["direct"][r][3] for r in reps)))
print("per pair: " + ", ".join("%.0f/%.0f=%.2fx" % (d["ours"][r][0], d["direct"][r][0], x)
                              for r, x in zip(reps, ratios)))
for r in reps:
    print("listener_ours_rps=%.0f" % d["ours"][r][0])
    print("listener_direct_rps=%.0f" % d["direct"][r][0])
print("listener_ours_p50_us=%.0f" % med("ours", 1))
print("listener_direct_p50_us=%.0f" % med("direct", 1))
print("listener_ratio=%.3f" % ratio)
print("listener_goal=%s (ours %.2fx direct requests/s; goal >= %.1fx)"
      % ("met" if ratio >= goal else "MISSED", ratio, goal))
EOF
