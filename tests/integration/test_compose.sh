#!/bin/bash
# `weaver-docker compose` (issue 6, docs/design/compose.md): the written file runs the shop app
# under docker-compose 1.29 and on a one-node Swarm with no weaver-docker process on the host:
# correct answers, scaling, a crashed container restarted and routed to again, readable logs,
# nothing left after down / stack rm. Bad inputs give one line, a non-zero exit and no file.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
[ -x "$WD_SHIM" ] || { not_ok "shim built ($WD_SHIM)"; finish; }
export WEAVER_DOCKER_SHIM=$WD_SHIM
DC=${WD_DOCKER_COMPOSE:-docker-compose}
command -v "$DC" >/dev/null || { not_ok "docker-compose installed"; finish; }

sed "s|^binary = .*|binary = \"$APPS/shop\"|" "$WD_ROOT/tests/apps/shop/weaver.toml" >"$WD_TMP/weaver.toml"
F=$WD_TMP/shop.yml
PROJ=wdc$$
get() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT$1"; }
ms() { date +%s%3N; }
dc() { "$DC" -f "$F" -p "$PROJ" "$@" 2> >(grep -v 'deploy sub-keys are not supported' >&2); }
lab="label=org.weaver-docker.test=$WD_TEST_RUN"
nothing_left() { [ -z "$(docker ps -aq --filter "$lab")" ] && [ -z "$(docker network ls -q --filter "$lab")" ]; }

# ---- bad inputs: one line, exit != 0, no file ----
bad() { # NAME EXPECT_RC INPUT
    local out=$WD_TMP/bad.yml rc
    rm -f "$out"
    "$WD_BIN" compose -o "$out" "$3" >"$WD_TMP/bad.out" 2>"$WD_TMP/bad.err"
    rc=$?
    if [ "$rc" = "$2" ] && [ "$(wc -l <"$WD_TMP/bad.err")" = 1 ] && [ ! -e "$out" ]; then
        ok "bad input: $1 -> exit $rc: $(cat "$WD_TMP/bad.err")"
    else
        not_ok "bad input: $1 (exit $rc, $(wc -l <"$WD_TMP/bad.err") lines: $(head -c 300 "$WD_TMP/bad.err"))"
    fi
}
bad "missing file" 1 "$WD_TMP/nope/weaver.toml"
bad "not a weaver binary" 2 /bin/true
printf '[serviceweaver\nname = "x"\n' >"$WD_TMP/broken.toml"
bad "malformed toml" 2 "$WD_TMP/broken.toml"

# ---- generate ----
on_cleanup "$DC -f $F -p $PROJ down -t 2"
t0=$(ms)
if "$WD_BIN" compose -o "$F" -p "$PROJ" --save-images "$WD_TMP/img" "$WD_TMP/weaver.toml" \
    >"$WD_TMP/gen.out" 2>"$WD_TMP/gen.err"; then
    ok "compose wrote the file in $(($(ms) - t0)) ms ($(wc -c <"$F") bytes)"
else
    not_ok "compose: $(cat "$WD_TMP/gen.err")"
    finish
fi
diag "$(tr '\n' ' ' <"$WD_TMP/gen.out")"
PORT=$(sed -n 's/^listener shop on port \([0-9]*\)$/\1/p' "$WD_TMP/gen.out")
TOKEN=$(sed -n 's/.*WEAVER_SHIM_TOKEN: "\{0,1\}\([0-9a-f]*\)"\{0,1\}.*/\1/p' "$F" | head -1)
check "a 64-hex token is in the file" test "${#TOKEN}" = 64
check "the token is not printed" bash -c "! grep -q '$TOKEN' '$WD_TMP/gen.out' '$WD_TMP/gen.err'"
check "the file is private (0600)" test "$(stat -c %a "$F")" = 600
check "image by ID (sha256:...)" grep -q 'image: "sha256:[0-9a-f]\{64\}"' "$F"
IMGTAR=$(ls "$WD_TMP"/img/shop-*.tar 2>/dev/null | head -1)
check "--save-images wrote a docker-archive ($(stat -c %s "$IMGTAR" 2>/dev/null) bytes)" \
    bash -c "tar -tf '$IMGTAR' | grep -q manifest.json"
"$WD_BIN" compose -o "$WD_TMP/second.yml" "$WD_TMP/weaver.toml" >/dev/null 2>&1
T2=$(sed -n 's/.*WEAVER_SHIM_TOKEN: "\([0-9a-f]*\)".*/\1/p' "$WD_TMP/second.yml" | head -1)
check "every file gets its own token" test -n "$T2" -a "$T2" != "$TOKEN"
check "docker-compose config -q accepts the file" dc config -q
if docker stack config --help >/dev/null 2>&1; then
    check "docker stack config accepts the file" bash -c "docker stack config -c '$F' >/dev/null"
fi

# ---- docker-compose up ----
t0=$(ms)
if dc up -d >"$WD_TMP/up.log" 2>&1 && wait_for get /healthz; then
    ok "docker-compose up -d: answers after $(($(ms) - t0)) ms"
else
    not_ok "docker-compose up -d: $(tail -5 "$WD_TMP/up.log")"
    dc logs --no-color manager 2>&1 | tail -20 | sed 's/^/# /'
fi
check "/healthz -> ok" test "$(get /healthz)" = ok
check "/buy?item=apple -> bought apple: 1 in cart (stock 9)" \
    test "$(get '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
# no weaver-docker of ours runs on the host (the manager runs in its own PID namespace)
ours=0
for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$(readlink -f "$WD_BIN")" ] && ours=$((ours + 1))
done
check "no weaver-docker process on the host ($ours found)" test "$ours" = 0
check "the manager prints pretty weaver logs (docker-compose logs)" \
    bash -c "'$DC' -f '$F' -p '$PROJ' logs --no-color manager 2>/dev/null | grep -q 'shop.Cart .*added item'"
wait_for bash -c "docker ps --filter '$lab' --filter health=healthy -q | wc -l | grep -qx 5"
check "all 5 containers healthy (shim and manager healthchecks)" \
    test "$(docker ps --filter "$lab" --filter health=healthy -q | wc -l)" = 5

# ---- scale ----
t0=$(ms)
dc up -d --scale shop-cart=3 >"$WD_TMP/scale.log" 2>&1
carts() { for i in $(seq 1 15); do get /whoami; echo; done | sed -n 's/.*cart=//p' | sort -u | wc -l; }
n=0
for i in $(seq 1 60); do n=$(carts); [ "$n" = 3 ] && break; sleep 0.5; done
check "--scale shop-cart=3: /whoami sees 3 cart replicas after $(($(ms) - t0)) ms" test "$n" = 3
check "answers stay correct while scaled" bash -c "curl -fsS --max-time 5 'http://127.0.0.1:$PORT/buy?item=pear' | grep -q '^bought pear: '"
regs=$(dc logs --no-color manager 2>/dev/null | grep -c 'group shop.Cart replica . registered')
check "the manager registered 3 shop.Cart replicas ($regs)" test "$regs" -ge 3

# ---- a crashed container is restarted and routing heals ----
# `docker kill` counts as a manual stop on Docker 20.10 (no restart), so crash it instead: SIGKILL
# to its PID 1 from the host, which the engine treats like any other crash.
crash() { # SERVICE
    local c pid
    c=$(docker ps -q --filter "$lab" --filter "label=com.docker.compose.service=$1" | head -1)
    pid=$(docker inspect -f '{{.State.Pid}}' "$c")
    kill -9 "$pid"
    echo "$c"
}
t0=$(ms)
main_c=$(crash weaver-main)
healed=0
for i in $(seq 1 150); do
    if get '/buy?item=plum' 2>/dev/null | grep -q '^bought plum'; then healed=1; break; fi
    sleep 0.2
done
check "main crashed (SIGKILL): restarted by policy, answers again after $(($(ms) - t0)) ms" test "$healed" = 1
check "restart count of the crashed container >= 1" \
    test "$(docker inspect -f '{{.RestartCount}}' "$main_c")" -ge 1
t0=$(ms)
crash shop-cart >/dev/null
bad_answers=0
for i in $(seq 1 20); do get '/buy?item=fig' >/dev/null 2>&1 || bad_answers=$((bad_answers + 1)); done
n=0
for i in $(seq 1 60); do n=$(carts); [ "$n" = 3 ] && break; sleep 0.5; done
check "a cart replica crashed: routing heals, 3 replicas again after $(($(ms) - t0)) ms ($bad_answers of 20 requests failed meanwhile)" test "$n" = 3
dc logs --no-color manager 2>/dev/null | grep -E 'lost its link|exited with' | head -3 | sed 's/^/# /'

# ---- down ----
t0=$(ms)
dc down -t 5 >"$WD_TMP/down.log" 2>&1
wait_for nothing_left
check "docker-compose down leaves nothing (containers, network) in $(($(ms) - t0)) ms" nothing_left

# ---- Swarm ----
state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)
made_swarm=0
STACK=wds$$
swarm_cleanup() {
    docker stack rm "$STACK" >/dev/null 2>&1
    if [ "$made_swarm" = 1 ]; then
        for i in $(seq 1 100); do [ -z "$(docker ps -aq --filter "$lab")" ] && break; sleep 0.2; done
        docker swarm leave --force >/dev/null 2>&1
        [ "$had_gwbridge" = 0 ] && docker network rm docker_gwbridge >/dev/null 2>&1
    fi
    return 0
}
had_gwbridge=0
docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=1
swarm_ok=0
if [ "$state" = active ]; then
    swarm_ok=1
    diag "using the swarm this engine is already in"
elif [ "$state" = inactive ]; then
    if out=$(docker swarm init --advertise-addr 127.0.0.1 2>&1); then
        made_swarm=1
        swarm_ok=1
    else
        ok "SKIP swarm: docker swarm init failed: $(echo "$out" | tr '\n' ' ')"
    fi
else
    ok "SKIP swarm: node state is '$state'"
fi
on_cleanup swarm_cleanup
if [ "$swarm_ok" = 1 ]; then
    t0=$(ms)
    if docker stack deploy --resolve-image never -c "$F" "$STACK" >"$WD_TMP/stack.log" 2>&1 &&
        wait_for get /healthz || wait_for get /healthz || wait_for get /healthz; then
        ok "docker stack deploy: answers after $(($(ms) - t0)) ms"
    else
        not_ok "docker stack deploy: $(tail -3 "$WD_TMP/stack.log")"
        docker service logs --raw "${STACK}_manager" 2>&1 | tail -20 | sed 's/^/# /'
    fi
    check "swarm: /buy?item=apple -> bought apple: 1 in cart (stock 9)" \
        test "$(get '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
    check "swarm: /whoami names main and cart" bash -c "curl -fsS --max-time 5 http://127.0.0.1:$PORT/whoami | grep -q '^main=.* cart=.'"
    t0=$(ms)
    docker stack rm "$STACK" >/dev/null 2>&1
    for i in $(seq 1 150); do nothing_left && break; sleep 0.2; done
    check "docker stack rm leaves nothing in $(($(ms) - t0)) ms" nothing_left
    swarm_cleanup
    made_swarm=0
    if [ "$state" = inactive ]; then
        check "swarm left again" test "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive
        [ "$had_gwbridge" = 0 ] && check "docker_gwbridge removed" bash -c "! docker network inspect docker_gwbridge >/dev/null 2>&1"
    fi
fi
finish
