#!/bin/bash
# bench/logflood.sh [BUILD] - issue 16's figures (part of `make bench`): log lines per second
# from one flooding weavelet (shop's Main, /flood?n=N) with the terminal (a) read at full speed,
# (b) not read at all, against `weaver multi deploy` of the same app in the same run; and the
# listener's p50/p99 during a flood against before it. Prints a small table and logflood_*
# key=value lines. Measures; asserts nothing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
WD=$ROOT/$BUILD/weaver-docker
WEAVER=$ROOT/build/go/bin/weaver
SHOP=$ROOT/build/go/apps/shop
N=${LOGFLOOD_N:-200000}
for f in "$WD" "$SHOP"; do
    [ -x "$f" ] || { echo "logflood_skipped=$f is not built"; exit 0; }
done
TMP=$(mktemp -d /tmp/wd-logflood.XXXXXX)
TAG=bench-logflood-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
export XDG_STATE_HOME=$TMP/state
APP=logflood$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    "$WD" down "$APP" >/dev/null 2>&1
    [ -n "${mpg:-}" ] && kill -INT -- "-$mpg" 2>/dev/null && sleep 2 && kill -9 -- "-$mpg" 2>/dev/null
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker network rm >/dev/null 2>&1
    docker images -q --filter "label=org.weaver-docker.test=$TAG" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
port=$(python3 "$ROOT/bench/bench.py" freeport)
mport=$(python3 "$ROOT/bench/bench.py" freeport)
cat >"$TMP/w.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$SHOP"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:$port"}
[multi]
listeners.shop = {address = "127.0.0.1:$mport"}
EOF
now_ms() { date +%s%3N; }
wait_ok() { for _ in $(seq 1 600); do curl -fsS --max-time 2 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
# a reader of the terminal pipe that counts flood lines and notes when it saw the Nth
counter() { # OUT-FILE: reads stdin at full speed
    python3 -c '
import sys, time
n, want, out = 0, int(sys.argv[1]), sys.argv[2]
for line in sys.stdin.buffer:
    if b"flood" in line:
        n += 1
        if n == want:
            open(out, "w").write("%d\n" % int(time.time() * 1000))
' "$N" "$1"
}
logfile_lines() { # flood lines in the newest deployment's log file
    local f
    f=$(ls -t "$XDG_STATE_HOME/weaver-docker/$APP/"*.log 2>/dev/null | grep -v deployer.log | head -1)
    [ -n "$f" ] && grep -c '"msg":"flood"' "$f" || echo 0
}
flood_rate() { # LABEL URL-PORT WAIT-FOR: lines/s from the request to the Nth line seen
    local t0 t1
    t0=$(now_ms)
    curl -fsS --max-time 600 "http://127.0.0.1:$2/flood?n=$N" >/dev/null
    case $3 in
    file:*) for _ in $(seq 1 6000); do [ -s "${3#file:}" ] && break; sleep 0.05; done; t1=$(cat "${3#file:}") ;;
    log) for _ in $(seq 1 6000); do [ "$(logfile_lines)" -ge "$N" ] && break; sleep 0.05; done; t1=$(now_ms) ;;
    esac
    echo "logflood_${1}_lines_per_s=$((N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))"
}

# (a) weaver-docker, terminal read at full speed
"$WD" up "$TMP/w.toml" 2>"$TMP/a.err" | counter "$TMP/a.done" &
pids+=($!)
wait_ok "http://127.0.0.1:$port/healthz" || { echo "logflood_skipped=up did not answer"; exit 0; }
lat0=$(python3 "$ROOT/bench/bench.py" lat --url "http://127.0.0.1:$port/healthz" -n 300 --warmup 50)
flood_rate wd_read "$port" "file:$TMP/a.done"
# listener latency while Main floods (the terminal read)
curl -fsS --max-time 600 "http://127.0.0.1:$port/flood?n=$((N * 2))" >/dev/null &
fl=$!
lat1=$(python3 "$ROOT/bench/bench.py" lat --url "http://127.0.0.1:$port/healthz" -n 300 --warmup 0)
wait "$fl"
"$WD" down "$APP" >/dev/null 2>&1
sleep 1

# (b) weaver-docker, terminal not read at all
mkfifo "$TMP/fifo"
sleep 100000 <"$TMP/fifo" &
pids+=($!)
"$WD" up "$TMP/w.toml" >"$TMP/fifo" 2>"$TMP/b.err" &
pids+=($!)
wait_ok "http://127.0.0.1:$port/healthz" || { echo "logflood_skipped=up (unread) did not answer"; exit 0; }
flood_rate wd_unread "$port" log
curl -fsS --max-time 600 "http://127.0.0.1:$port/flood?n=$((N * 2))" >/dev/null &
fl=$!
lat2=$(python3 "$ROOT/bench/bench.py" lat --url "http://127.0.0.1:$port/healthz" -n 300 --warmup 0)
wait "$fl"
"$WD" down "$APP" >/dev/null 2>&1

# (c) weaver multi, terminal read at full speed
if [ -x "$WEAVER" ]; then
    # weaver multi prints the logs on stderr
    (cd "$TMP" && exec setsid "$WEAVER" multi deploy w.toml 2>&1 >"$TMP/m.out" | counter "$TMP/m.done") &
    sleep 0.5
    mpg=$(ps -o pgid= -p "$(pgrep -f "weaver multi deploy w.toml" | head -1)" 2>/dev/null | tr -d ' ')
    if wait_ok "http://127.0.0.1:$mport/healthz"; then
        flood_rate multi_read "$mport" "file:$TMP/m.done"
    else
        echo "logflood_multi_skipped=weaver multi did not answer"
    fi
else
    echo "logflood_multi_skipped=the weaver CLI is not built (make apps)"
fi
p() { echo "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print('%d %d' % (d['p50_us'], d['p99_us']))"; }
read -r b50 b99 <<<"$(p "$lat0")"
read -r r50 r99 <<<"$(p "$lat1")"
read -r u50 u99 <<<"$(p "$lat2")"
echo "logflood_lat_before_p50_us=$b50"
echo "logflood_lat_before_p99_us=$b99"
echo "logflood_lat_flood_read_p99_us=$r99"
echo "logflood_lat_flood_unread_p99_us=$u99"
echo "logflood_lat_flood_unread_errors=$(echo "$lat2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')"
