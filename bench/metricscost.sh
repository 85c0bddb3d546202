#!/bin/bash
# bench/metricscost.sh [BUILD] - issue 11's figure (part of `make bench`): the deployer's CPU
# (percent of one core) and RSS while it polls GetMetrics from the wide app's 51 groups every
# second, idle app, over METRICSCOST_SECS (20) seconds after a warm-up; against `weaver multi
# deploy` of the same app in the same run (its deployer process alone, which also polls
# metrics every second). Goal: < 2% of one core. Prints a small table and metricscost_*
# key=value lines. Measures; asserts nothing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
WEAVER=$ROOT/build/go/bin/weaver
WIDE=$ROOT/build/go/apps/wide
SECS=${METRICSCOST_SECS:-20}
for f in "$WD" "$WIDE"; do
    [ -x "$f" ] || { echo "metricscost_skipped=$f is not built"; exit 0; }
done
TMP=$(mktemp -d /tmp/wd-metricscost.XXXXXX)
TAG=bench-metricscost-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
export XDG_STATE_HOME=$TMP/state
APP=metricscost$$
mpid=
cleanup() {
    "$WD" down "$APP" >/dev/null 2>&1
    if [ -n "$mpid" ]; then
        kill -INT -- "-$mpid" 2>/dev/null && sleep 2 && kill -9 -- "-$mpid" 2>/dev/null
    fi
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker network rm >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
port=$(python3 "$ROOT/bench/bench.py" freeport)
cat >"$TMP/w.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$WIDE"
[docker]
listeners.wide = {address = "127.0.0.1:$port"}
[multi]
listeners.wide = {address = "127.0.0.1:$port"}
EOF

# cpu_rss PID SECS -> "cpu_percent rss_kib rss_growth_kib" of that process over SECS seconds
cpu_rss() {
    python3 - "$1" "$2" <<'PY'
import os, sys, time
pid, secs = sys.argv[1], float(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def rss():
    return int([l.split()[1] for l in open("/proc/%s/status" % pid) if l.startswith("VmRSS:")][0])
t0, c0, r0 = time.time(), ticks(), rss()
time.sleep(secs)
t1, c1, r1 = time.time(), ticks(), rss()
print("%.2f %d %d" % (100.0 * (c1 - c0) / hz / (t1 - t0), r1, r1 - r0))
PY
}

"$WD" up -d "$TMP/w.toml" >"$TMP/up.out" 2>&1 || { echo "metricscost_skipped=up failed: $(tail -1 "$TMP/up.out")"; exit 0; }
dpid=$(sed -n 's/.*deployer pid \([0-9]*\).*/\1/p' "$TMP/up.out")
sleep 5 # warm-up: every replica has sent its definitions
read -r wd_cpu wd_rss wd_grow <<<"$(cpu_rss "$dpid" "$SECS")"
polls=$("$WD" metrics --json "$APP" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["metrics"]))')
"$WD" down "$APP" >/dev/null 2>&1

m_cpu=- m_rss=- m_grow=-
if [ -x "$WEAVER" ]; then
    (cd "$TMP" && exec setsid "$WEAVER" multi deploy w.toml >"$TMP/multi.out" 2>&1) &
    mpid=$!
    for i in $(seq 100); do curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.2; done
    sleep 5
    mp=$(pgrep -s "$mpid" -f 'weaver multi deploy' | head -1)
    [ -n "$mp" ] && read -r m_cpu m_rss m_grow <<<"$(cpu_rss "$mp" "$SECS")"
fi
printf '%-44s %12s %12s %12s\n' "deployer, idle wide app (51 groups), ${SECS}s" "CPU % core" "RSS KiB" "RSS growth"
printf '%-44s %12s %12s %12s\n' "weaver-docker (metrics every 1 s)" "$wd_cpu" "$wd_rss" "$wd_grow"
printf '%-44s %12s %12s %12s\n' "weaver multi (metrics every 1 s)" "$m_cpu" "$m_rss" "$m_grow"
echo "metricscost_wd_cpu_percent=$wd_cpu"
echo "metricscost_wd_rss_kib=$wd_rss"
echo "metricscost_wd_rss_growth_kib=$wd_grow"
echo "metricscost_multi_cpu_percent=$m_cpu"
echo "metricscost_multi_rss_kib=$m_rss"
echo "metricscost_multi_rss_growth_kib=$m_grow"
echo "metricscost_series=$polls"
