#!/bin/bash
# Swarm rollover (issue 12 item 4, docs/design/rollout.md "Compose and Swarm"): the file
# `weaver-docker compose --swarm` writes for v2 of tests/apps/versioned, deployed with
# `docker stack deploy` over the running v1 stack, takes over with no failed request and no
# answer mixing versions: the front keeps the port, the new manager and groups start beside the
# old ones (start-first), the front moves when the new version serves, the old tasks drain.
# Afterwards only v2 answers and no v1 task runs. A one-node swarm is made (and left) by the test.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
for v in v1 v2; do
    [ -x "$APPS/versioned-$v" ] || { not_ok "test app versioned-$v is built (run make apps)"; finish; }
done
export WEAVER_DOCKER_SHIM=$WD_SHIM
lab="label=org.weaver-docker.test=$WD_TEST_RUN"
STACK=wdr$$
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])')
for v in v1 v2; do
    printf '[serviceweaver]\nname = "versioned"\nbinary = "%s"\n[docker]\nlisteners.web = {address = ":%s"}\n' \
        "$APPS/versioned-$v" "$PORT" >"$WD_TMP/$v.toml"
    "$WD_BIN" compose --swarm -o "$WD_TMP/$v.yml" "$WD_TMP/$v.toml" >"$WD_TMP/gen.$v" 2>&1 ||
        { not_ok "compose --swarm $v: $(cat "$WD_TMP/gen.$v")"; finish; }
done
check "the file has a front service that publishes the port" \
    bash -c "grep -q '^  front:' '$WD_TMP/v1.yml' && grep -q 'published: $PORT' '$WD_TMP/v1.yml'"
front_spec() { python3 - "$1" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
m = re.search(r'^  front:\n((?:    .*\n|      .*\n)+)', text, re.M)
print(m.group(1) if m else "")
PY
}
check "v1's and v2's front services are the same (stack deploy leaves it running)" \
    test "$(front_spec "$WD_TMP/v1.yml")" = "$(front_spec "$WD_TMP/v2.yml")" -a -n "$(front_spec "$WD_TMP/v1.yml")"
nsvc=$(awk '/^services:/ {on = 1; next} /^[a-z]/ {on = 0} on && /^  [a-z][a-z0-9-]*:$/ {n++} END {print n}' "$WD_TMP/v1.yml")
check "the manager and the groups ($((nsvc - 1)) services) update start-first" \
    test "$(grep -c 'order: start-first' "$WD_TMP/v1.yml")" = $((nsvc - 1))

state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)
made_swarm=0
had_gwbridge=0
docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=1
swarm_cleanup() {
    docker stack rm "$STACK" >/dev/null 2>&1
    for i in $(seq 1 150); do [ -z "$(docker ps -aq --filter "$lab")" ] && break; sleep 0.2; done
    if [ "$made_swarm" = 1 ]; then
        docker swarm leave --force >/dev/null 2>&1
        [ "$had_gwbridge" = 0 ] && docker network rm docker_gwbridge >/dev/null 2>&1
    fi
    return 0
}
if [ "$state" = inactive ]; then
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null 2>&1 && made_swarm=1
elif [ "$state" != active ]; then
    skip_or_fail "swarm: node state is '$state'"
    finish
fi
on_cleanup swarm_cleanup
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] || { skip_or_fail "swarm: init failed"; finish; }

get() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/"; }
(cd / && docker stack deploy --resolve-image never -c "$WD_TMP/v1.yml" "$STACK") >"$WD_TMP/deploy1" 2>&1
if wait_for get && wait_for get; then
    ok "v1 stack answers: $(get)"
else
    not_ok "v1 stack answers: $(tail -3 "$WD_TMP/deploy1")"
    docker service logs --raw "${STACK}_manager" 2>&1 | tail -20 | sed 's/^/# /'
    docker service logs --raw "${STACK}_front" 2>&1 | tail -5 | sed 's/^/# /'
    finish
fi
# every task healthy first: a rollover starts from a settled stack
settled() { ! docker service ls --filter "name=${STACK}_" --format '{{.Replicas}}' | grep -qv '^1/1$'; }
wait_for settled
front_id=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_front")

# the bounded loop: a new connection per request, one answer (or FAIL) a line in $WD_TMP/OUT,
# a pause between requests, until $WD_TMP/stop exists (at most MAX requests)
loop_start() { # OUT PAUSE MAX
    rm -f "$WD_TMP/stop" "$WD_TMP/$1"
    (
        for i in $(seq "$3"); do
            [ -e "$WD_TMP/stop" ] && break
            curl -fsS --max-time 10 "http://127.0.0.1:$PORT/" >>"$WD_TMP/$1" 2>>"$WD_TMP/loop.err" ||
                echo FAIL >>"$WD_TMP/$1"
            sleep "$2"
        done
    ) &
    LOOP=$!
}
loop_start ans 0.01 6000
sleep 1
(cd / && docker stack deploy --resolve-image never -c "$WD_TMP/v2.yml" "$STACK") >"$WD_TMP/deploy2" 2>&1
check "docker stack deploy of v2's file over v1" grep -q "Updating service ${STACK}_manager" "$WD_TMP/deploy2"
# done when VERSION answers and no task of the other runs any more (update_config: start-first,
# then drain): one task per service, front, the manager and the groups
only() { # VERSION
    [ "$(get)" = "main=$1 stamp=$1" ] || return 1
    [ "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" | wc -l)" = "$nsvc" ]
}
# the loop's answers in $WD_TMP/FILE: sets total, v1, v2 (all-v1, all-v2 answers) and failed
tally() { # FILE
    total=$(wc -l <"$WD_TMP/$1")
    v1=$(grep -cx 'main=v1 stamp=v1' "$WD_TMP/$1")
    v2=$(grep -cx 'main=v2 stamp=v2' "$WD_TMP/$1")
    failed=$(grep -cx FAIL "$WD_TMP/$1")
}
t0=$(date +%s%3N)
wait_for only v2 || wait_for only v2 || wait_for only v2
took=$(($(date +%s%3N) - t0))
sleep 1
touch "$WD_TMP/stop"
wait "$LOOP"
tally ans
mixed=$((total - v1 - v2 - failed))
diag "$total requests during the rollover: $v1 all-v1, $v2 all-v2, $failed failed, $mixed other; v1 gone after ${took} ms"
check "no request failed during the rollover" [ "$failed" = 0 ]
check "every answer is all-v1 or all-v2 (never mixed)" [ "$mixed" = 0 ]
check "both versions answered during the loop" [ "$v1" -gt 0 ] && [ "$v2" -gt 0 ]
check "after the rollover only v2 answers (the last 20 answers)" \
    bash -c "! tail -n 20 '$WD_TMP/ans' | grep -vqx 'main=v2 stamp=v2'"
check "no v1 task runs any more (one task per service)" only v2
check "the front was not restarted by the update" \
    test -n "$front_id" -a "$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_front")" = "$front_id"
docker service logs --raw "${STACK}_front" 2>&1 | grep 'front:' | tail -3 | sed 's/^/# /'
if [ "$failed" != 0 ] || [ "$mixed" != 0 ]; then
    grep -v '^main=' "$WD_TMP/ans" | sort | uniq -c | head | sed 's/^/# /'
    tail -5 "$WD_TMP/loop.err" | sed 's/^/# /'
fi

# back to v1 (its file, written before v2's) under sparse traffic: the draining v2 manager says
# it no longer serves, so the front moves to v1's; v2's manager holds on until v1's serves
loop_start ans2 0.7 200
sleep 1
(cd / && docker stack deploy --resolve-image never -c "$WD_TMP/v1.yml" "$STACK") >"$WD_TMP/deploy3" 2>&1
wait_for only v1 || wait_for only v1 || wait_for only v1
sleep 1
touch "$WD_TMP/stop"
wait "$LOOP"
tally ans2
diag "back to v1, a request every 0.7 s: $total requests: $v2 all-v2, $v1 all-v1, $failed failed, $((total - v1 - v2 - failed)) other"
check "back to v1 with sparse traffic: no request failed" [ "$failed" = 0 ]
check "... none mixed, and v1 answers at the end" \
    bash -c "[ $((total - v1 - v2 - failed)) = 0 ] && [ '$(tail -n 1 "$WD_TMP/ans2")' = 'main=v1 stamp=v1' ]"

docker stack rm "$STACK" >/dev/null 2>&1
gone() { [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]; }
check "stack rm leaves no container" wait_for gone
finish
