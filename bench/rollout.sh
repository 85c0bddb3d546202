#!/bin/bash
# bench/rollout.sh [BUILD] - issue 12's figures (part of `make bench`), tests/apps/versioned on
# the real engine, in one run:
#   - rollout: `up -d` of v2 over a running v1 (rollout = 0) -> `up -d` returns, which is when
#     the listening socket is v2's (all new connections on v2); against a cold `up -d` of v2
#     alone (image already built; same wait). Median of ROLLOUT_REPS (3). Goal <= 1.3x. The
#     same under the request loop below is reported too (the loop takes a CPU of the two).
#   - latency through the listener, p99 of sequential keep-alive-less GETs (a new connection
#     each, as a split decides per connection): during the switch (from `up` of v2 until 1 s
#     after it returned) against the 3 s before it.
# Prints a small table and rollout_* key=value lines. Measures; asserts nothing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
APPS=$ROOT/build/go/apps
REPS=${ROLLOUT_REPS:-3}
for f in "$WD" "$APPS/versioned-v1" "$APPS/versioned-v2"; do
    [ -x "$f" ] || { echo "rollout_skipped=$f is not built"; exit 0; }
done
export WEAVER_DOCKER_SHIM=${WEAVER_DOCKER_SHIM:-$BUILD/shim/weaver-docker-shim}
TMP=$(mktemp -d /tmp/wd-rollout.XXXXXX)
TAG=bench-rollout-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
export XDG_STATE_HOME=$TMP/state
mkdir -p "$XDG_STATE_HOME"
APP=rollout$$
cleanup() {
    "$WD" down "$APP" >/dev/null 2>&1
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker network rm >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
port=$(python3 "$ROOT/bench/bench.py" freeport)
for v in v1 v2; do
    cat >"$TMP/$v.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$APPS/versioned-$v"
[docker]
listeners.web = {address = "127.0.0.1:$port"}
EOF
done
# images built once, outside the timings
"$WD" up -d "$TMP/v1.toml" >/dev/null 2>&1 && "$WD" up -d "$TMP/v2.toml" >/dev/null 2>&1
"$WD" down "$APP" >/dev/null 2>&1

python3 - "$WD" "$TMP" "$port" "$REPS" "$APP" <<'PY'
import http.client, statistics, subprocess, sys, threading, time
wd, tmp, port, reps, app = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def up(v):
    t0 = time.monotonic()
    r = subprocess.run([wd, "up", "-d", "%s/%s.toml" % (tmp, v)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return (time.monotonic() - t0) * 1e3, r.returncode

def down():
    subprocess.run([wd, "down", app], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def get():
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode().strip()
        ok = r.status == 200
    except (OSError, http.client.HTTPException):
        body, ok = "", False
    finally:
        c.close()
    return t0, (time.monotonic() - t0) * 1e3, ok, body

def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else float("nan")

cold, roll, loaded, before, during, fails = [], [], [], [], [], 0
for i in range(reps):
    down()
    ms, rc = up("v2")
    if rc == 0:
        cold.append(ms)
    down()
    if up("v1")[1] != 0:
        continue
    ms, rc = up("v2")  # the same wait, over a running v1, with no other load
    if rc == 0:
        roll.append(ms)
    down()
    if up("v1")[1] != 0:
        continue
    samples, stop = [], threading.Event()
    def loop():
        while not stop.is_set():
            samples.append(get())
    th = threading.Thread(target=loop)
    th.start()
    time.sleep(3)
    t_up = time.monotonic()
    ms, rc = up("v2")  # under a request loop: latency during the switch
    t_done = time.monotonic()
    time.sleep(1)
    stop.set()
    th.join()
    if rc == 0:
        loaded.append(ms)
    before += [l for t, l, ok, b in samples if t < t_up]
    during += [l for t, l, ok, b in samples if t_up <= t <= t_done + 1]
    fails += sum(1 for s in samples if not s[2])
down()
if not cold or not roll:
    print("rollout_skipped=an up failed (cold %d, rollout %d of %d)" % (len(cold), len(roll), reps))
    sys.exit(0)
c, r = statistics.median(cold), statistics.median(roll)
pb, pd = p99(before), p99(during)
print("%-44s %10s %10s %7s" % ("", "rollout", "baseline", "ratio"))
print("%-44s %8.0f ms %8.0f ms %6.2fx" % ("up -d of v2: all traffic on v2 vs cold up", r, c, r / c))
if loaded:
    print("%-44s %8.0f ms" % ("... the same under a request loop (2 CPUs)", statistics.median(loaded)))
print("%-44s %7.2f ms %7.2f ms %6.2fx" % ("listener p99 during the switch vs before", pd, pb, pd / pb))
print("rollout_ms=%.0f" % r)
print("rollout_cold_ms=%.0f" % c)
print("rollout_ratio=%.2f" % (r / c))
if loaded:
    print("rollout_loaded_ms=%.0f" % statistics.median(loaded))
print("rollout_goal=%s (<= 1.3x a cold up)" % ("met" if r / c <= 1.3 else "MISSED"))
print("rollout_p99_before_ms=%.2f" % pb)
print("rollout_p99_during_ms=%.2f" % pd)
print("rollout_requests=%d" % (len(before) + len(during)))
print("rollout_failed_requests=%d" % fails)
PY
