#!/bin/bash
# Engine faults (issue 10), on a second dockerd of this test's own, in a network namespace of
# its own (dockerd deletes a docker0 it did not expect when it restarts, so it must never see the
# host's), with its own socket, data-root, exec-root and pidfile; the deployer and the clients
# run in that namespace too. The system's engine is never touched. With the shop app on it:
#   - the engine stops and starts again mid-run: the deployer says it lost the event stream,
#     reconnects, lists its containers, replaces the dead ones, and the app answers through the
#     same listener again; ps shows what happened;
#   - the engine is paused (SIGSTOP) during `up`: a clear timeout line, and once it resumes the
#     deployment is removed, nothing left;
#   - the engine is paused while `up` stops: the stop does not hang, and the clean-up finishes
#     once the engine resumes.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
if ! command -v dockerd >/dev/null || [ "$(id -u)" != 0 ]; then
    skip_or_fail "a second dockerd needs root and the dockerd binary"
    finish
fi

# A short path: the engine's sockets must fit sun_path.
F=$(mktemp -d /tmp/wdf.XXXXXX)
SOCK=$F/d.sock
NS=wdf$$
ip netns add "$NS" && ip netns exec "$NS" ip link set lo up || { not_ok "a network namespace for the second engine"; finish; }
in_ns() { nsenter --net="/run/netns/$NS" "$@"; } # not `ip netns exec`: it remounts /sys, hiding the cgroups
# (a background `up` is started by nsenter itself, not through in_ns: $! must be its pid)
engine_pid() { cat "$F/d.pid" 2>/dev/null; }
start_engine() {
    echo '{}' >"$F/daemon.json" # never the system's /etc/docker/daemon.json
    in_ns dockerd --config-file "$F/daemon.json" --host "unix://$SOCK" --data-root "$F/data" \
        --exec-root "$F/x" --pidfile "$F/d.pid" --iptables=false --storage-driver=vfs \
        >>"$F/dockerd.log" 2>&1 &
    wait_for docker -H "unix://$SOCK" version
}
stop_engine() { # SIGTERM, as a service manager would; it stops its containers first
    local p; p=$(engine_pid) || return 0
    kill "$p" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
}
kill_engine() {
    local p; p=$(engine_pid)
    [ -n "$p" ] && kill -CONT "$p" 2>/dev/null
    stop_engine
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null
    pkill -9 -f "containerd --config $F/x/" 2>/dev/null
    pkill -9 -f "containerd-shim.*$F/x/" 2>/dev/null
    sleep 0.5
    grep " $F/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$F"
    ip netns del "$NS" 2>/dev/null
}
on_cleanup "DOCKER_HOST=unix://$SOCK timeout 30 nsenter --net=/run/netns/$NS '$WD_BIN' down shopf-$WD_TEST_RUN; kill_engine"

start_engine && ok "a second engine of the test's own starts" || { not_ok "a second engine starts (see dockerd.log)"; tail -5 "$F/dockerd.log"; finish; }
export DOCKER_HOST=unix://$SOCK
APP=shopf-$WD_TEST_RUN
cat >"$WD_TMP/shop.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$APPS/shop"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
["example.com/shop/Cart"]
Store = "s"
Max = 1000
EOF
get() { in_ns curl -fsS --max-time 5 "http://127.0.0.1:$1$2"; }
ours() { docker ps -aq --filter "label=org.weaver-docker.app=$APP" | wc -l; }
ournets() { docker network ls -q --filter "label=org.weaver-docker.app=$APP" | wc -l; }

# --- the engine restarts mid-run ---
nsenter --net="/run/netns/$NS" "$WD_BIN" up "$WD_TMP/shop.toml" >"$WD_TMP/up.out" 2>"$WD_TMP/up.err" &
UP=$!
check "up on the second engine: listener printed" \
    wait_for grep -q 'listener "shop" at' "$WD_TMP/up.err"
port=$(sed -n 's/.*listener "shop" at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up.err" | head -1)
check "the app answers" wait_for get "$port" '/buy?item=apple'
old_ids=$(docker ps -q --filter "label=org.weaver-docker.app=$APP" | sort)
stop_engine
check "the deployer says it lost the engine's events" \
    wait_for grep -q "lost the engine's event stream" "$WD_TMP/up.err"
check "the deployer stays up while the engine is down" kill -0 "$UP"
sleep 2
start_engine
check "the deployer reconnects and checks its containers" \
    wait_for grep -q 'engine events are back after' "$WD_TMP/up.err"
check "the app answers through the same listener again" wait_for get "$port" '/buy?item=pear'
check "its state moved on with new replicas (call chain works)" \
    bash -c "nsenter --net=/run/netns/$NS curl -fsS --max-time 5 'http://127.0.0.1:$port/buy?item=fig' | grep -q 'bought fig'"
new_ids=$(docker ps -q --filter "label=org.weaver-docker.app=$APP" | sort)
check "every group runs in a new container (4)" \
    bash -c "[ \$(echo '$new_ids' | grep -c .) = 4 ] && [ -z \"\$(comm -12 <(echo '$old_ids') <(echo '$new_ids'))\" ]"
ps_out=$("$WD_BIN" ps "$APP" 2>&1)
check "ps: deployer running, 4 replicas running" \
    bash -c "echo '$ps_out' | grep -q 'deployer running' && [ \$(echo '$ps_out' | grep -c ' running ') -ge 4 ]"
check "ps: LAST EXIT says the containers were lost with the engine" \
    bash -c "\"$WD_BIN\" ps --json $APP | grep -q 'engine'"
check "no dead container of the app is left behind" \
    wait_for bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP --filter status=exited)\" ]"
check "up was not restarted and no fatal line" bash -c "kill -0 $UP && ! grep -qi 'fatal\|runtime error\|AddressSanitizer' '$WD_TMP/up.err'"
kill -INT "$UP"
rc=0
wait "$UP" || rc=$?
check "Ctrl-C after the restart exits 0" test "$rc" = 0
check "nothing of the app is left on the engine" bash -c "[ \$(docker ps -aq --filter label=org.weaver-docker.app=$APP | wc -l) = 0 ] && [ \$(docker network ls -q --filter label=org.weaver-docker.app=$APP | wc -l) = 0 ]"

# --- the engine paused during up ---
export WEAVER_DOCKER_ENGINE_TIMEOUT=4 # each engine call's limit, so that this takes seconds
wait_long() { local i; for i in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
nsenter --net="/run/netns/$NS" "$WD_BIN" up "$WD_TMP/shop.toml" >"$WD_TMP/up2.out" 2>"$WD_TMP/up2.err" &
UP=$!
wait_for grep -q 'deploying' "$WD_TMP/up2.err"
kill -STOP "$(engine_pid)"
check "paused engine: up reports a timeout naming the engine" \
    wait_for grep -q 'did not answer within 4 s' "$WD_TMP/up2.err"
check "paused engine: up says it will remove the deployment once the engine answers" \
    wait_long grep -q 'once the engine answers' "$WD_TMP/up2.err"
sleep 2
kill -CONT "$(engine_pid)"
rc=0
for _ in $(seq 1 300); do kill -0 "$UP" 2>/dev/null || break; sleep 0.1; done
kill -0 "$UP" 2>/dev/null && { not_ok "paused engine: up ends once the engine resumes"; kill -9 "$UP"; }
wait "$UP" || rc=$?
check "paused engine: up exits non-zero" test "$rc" != 0
check "paused engine: no container or network left after it resumes" \
    bash -c "sleep 3; [ \$(docker ps -aq --filter label=org.weaver-docker.app=$APP | wc -l) = 0 ] && [ \$(docker network ls -q --filter label=org.weaver-docker.app=$APP | wc -l) = 0 ]"
leftovers() { # what the engine still holds of the app, for the log
    docker ps -a --filter "label=org.weaver-docker.app=$APP" --format '# {{.Names}} {{.Status}} {{.CreatedAt}}'
    docker network ls --filter "label=org.weaver-docker.app=$APP" --format '# network {{.Name}}'
}
[ -n "$(leftovers)" ] && { leftovers; sed 's/^/#  /' "$WD_TMP/up2.err" | tail -12; }

# --- the engine paused while up stops ---
nsenter --net="/run/netns/$NS" "$WD_BIN" up "$WD_TMP/shop.toml" >"$WD_TMP/up3.out" 2>"$WD_TMP/up3.err" &
UP=$!
wait_for grep -q 'listener "shop" at' "$WD_TMP/up3.err"
port=$(sed -n 's/.*listener "shop" at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up3.err" | head -1)
wait_for get "$port" /healthz
kill -STOP "$(engine_pid)"
kill -INT "$UP"
sleep 1
t0=$(date +%s)
for _ in $(seq 1 600); do grep -q 'once the engine answers' "$WD_TMP/up3.err" && break; sleep 0.1; done
check "paused engine at stop: up does not hang (says it waits for the engine)" \
    grep -q 'once the engine answers' "$WD_TMP/up3.err"
kill -CONT "$(engine_pid)"
for _ in $(seq 1 300); do kill -0 "$UP" 2>/dev/null || break; sleep 0.1; done
check "paused engine at stop: up ends once the engine resumes" bash -c "! kill -0 $UP 2>/dev/null"
kill -9 "$UP" 2>/dev/null
wait "$UP" 2>/dev/null
diag "stop with a paused engine took $(( $(date +%s) - t0 )) s to say so"
check "paused engine at stop: nothing left" \
    bash -c "sleep 2; [ \$(docker ps -aq --filter label=org.weaver-docker.app=$APP | wc -l) = 0 ] && [ \$(docker network ls -q --filter label=org.weaver-docker.app=$APP | wc -l) = 0 ]"
[ -n "$(leftovers)" ] && { leftovers; sed 's/^/#  /' "$WD_TMP/up3.err" | tail -12; }
finish
