#!/bin/bash
# `weaver-docker up` on the real engine with real weavelets (issue 5): answers through the
# listener with 1 and 3 replicas, a killed container healed with zero failed requests, a raw
# TCP listener, up -d + ps --json + logs + down, Ctrl-C, deployer SIGKILL then down, and bad
# inputs. After every case the engine holds none of this run's labeled objects.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
for a in shop echo; do
    [ -x "$APPS/$a" ] || { not_ok "test app $a is built (run make apps)"; finish; }
done
# App names unique to this run, so nothing of anyone else's is touched.
SHOP=shop-$WD_TEST_RUN
ECHO=echo-$WD_TEST_RUN
mkconf() { # NAME APP EXTRA-DOCKER-LINES...
    local name=$1 app=$2; shift 2
    {
        echo "[serviceweaver]"
        echo "name = \"$name\""
        echo "binary = \"$APPS/$app\""
        [ "$app" = shop ] && echo 'colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]'
        echo "[docker]"
        for l in "$@"; do echo "$l"; done
        [ "$app" = shop ] && printf '["example.com/shop/Cart"]\nStore = "s"\nMax = 1000\n'
    } >"$WD_TMP/$name.toml"
    echo "$WD_TMP/$name.toml"
}
on_cleanup "'$WD_BIN' down $SHOP; '$WD_BIN' down $ECHO"
listener() { # APP NAME -> port from ps --json
    "$WD_BIN" ps --json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]['listeners']['$2'].rsplit(':',1)[1])"
}
get() { curl -fsS --max-time 10 "http://127.0.0.1:$1$2"; }
clean_app() { # no container or network of APP left
    [ -z "$(docker ps -aq --filter label=org.weaver-docker.app=$1)" ] &&
        [ -z "$(docker network ls -q --filter label=org.weaver-docker.app=$1)" ]
}

# --- 1 replica: up -d, answers, ps --json, logs, down ---
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}')
check "up -d returns once the app answers" "$WD_BIN" up -d "$cfg"
port=$(listener "$SHOP" shop)
check "answers through the listener" test "$(get "$port" '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
check "config section reaches the container" test "$(get "$port" /config)" = "store=s max=1000"
ps_json=$("$WD_BIN" ps --json "$SHOP")
check "ps --json lists 4 groups, 1 replica each, running" python3 -c "
import json,sys; d=json.loads(sys.argv[1])[0]; r=d['replicas']
assert len(r)==4 and all(x['state']=='running' and x['address'] for x in r), r
assert sorted(x['group'] for x in r)==['shop.Cart','shop.Crasher','shop.Inventory','weaver.Main']" "$ps_json"
check "containers are hardened (read-only, no caps, non-root, no-new-privileges, no engine socket)" bash -c "
for c in \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP); do
  docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.Config.User}} {{.HostConfig.SecurityOpt}} {{range .Mounts}}{{.Source}}{{end}}' \$c |
    grep -q '^true \[ALL\] 65532:65532 \[no-new-privileges\] *\$' || exit 1
done"
check "the shim port is not published on the host" bash -c "
for c in \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP); do
  [ -z \"\$(docker port \$c)\" ] || exit 1; done"
check "engine healthchecks turn healthy" wait_for bash -c "[ \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP --filter health=healthy | wc -l) = 4 ]"
get "$port" /logs >/dev/null
check "logs from another terminal" wait_for bash -c "'$WD_BIN' logs $SHOP | grep -q 'error entry'"
check "logs --level error filters" bash -c "'$WD_BIN' logs --level error $SHOP | grep -q '^E' && ! '$WD_BIN' logs --level error $SHOP | grep -q '^I'"
check "logs --json prints JSON lines" bash -c "'$WD_BIN' logs --json -c Cart $SHOP | head -1 | python3 -c 'import json,sys; json.loads(sys.stdin.readline())'"
rc=0; msg=$("$WD_BIN" up -d "$cfg" 2>&1) || rc=$?
check "up twice (same binary and config): one line, nothing to do, exit 0" bash -c "[ $rc = 0 ] && [ \$(printf '%s\n' \"\$1\" | wc -l) = 1 ] && printf '%s' \"\$1\" | grep -q 'is up to date (deployment'" _ "$msg"
check "down removes everything" "$WD_BIN" down "$SHOP"
check "engine clean after down" clean_app "$SHOP"
check "logs still readable after down" bash -c "'$WD_BIN' logs $SHOP | grep -q 'bought\|added item'"

# --- 2 replicas, Cart 3: a killed container heals, zero failed requests ---
cfg=$(mkconf "$SHOP" shop 'replicas = 2' 'listeners.shop = {address = "127.0.0.1:0"}' 'groups."example.com/shop/Cart" = {replicas = 3}')
check "up -d with replicas" "$WD_BIN" up -d "$cfg"
port=$(listener "$SHOP" shop)
ps_json=$("$WD_BIN" ps --json "$SHOP")
check "3 Cart replicas, 2 of the others" python3 -c "
import json,sys; r=json.loads(sys.argv[1])[0]['replicas']
n={}; [n.__setitem__(x['group'], n.get(x['group'],0)+1) for x in r]
assert n=={'shop.Cart':3,'shop.Crasher':2,'shop.Inventory':2,'weaver.Main':2}, n" "$ps_json"
check "calls spread over the Cart replicas" bash -c "for i in \$(seq 1 30); do curl -fsS http://127.0.0.1:$port/whoami; done | sed 's/.*cart=//' | sort -u | wc -l | grep -qx 3"
victim=$(docker ps --filter label=org.weaver-docker.app=$SHOP --filter label=org.weaver-docker.group=shop.Cart --format '{{.Names}}' | head -1)
python3 - "$port" >"$WD_TMP/loop.out" <<'PY' &
import sys, time, urllib.request
port = sys.argv[1]; ok = fail = 0; end = time.time() + 6
while time.time() < end and ok + fail < 3000:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as r:
            ok += r.status == 200
    except Exception:
        fail += 1
    time.sleep(0.005)
print(ok, fail)
PY
loop=$!
sleep 1.5
docker kill "$victim" >/dev/null
wait $loop
read -r okn failn <"$WD_TMP/loop.out"
diag "request loop during the kill: $okn ok, $failn failed"
check "zero failed requests while a Cart replica was killed" test "${failn:-1}" = 0 -a "${okn:-0}" -gt 50
check "the killed replica is replaced" wait_for bash -c "[ \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP --filter label=org.weaver-docker.group=shop.Cart | wc -l) = 3 ]"
check "ps shows the restart" bash -c "'$WD_BIN' ps --json $SHOP | python3 -c 'import json,sys; r=json.load(sys.stdin)[0][\"replicas\"]; assert any(x[\"restarts\"]>=1 for x in r)'"
check "routing healed: answers from all 3 Cart replicas again" wait_for bash -c "for i in \$(seq 1 30); do curl -fsS http://127.0.0.1:$port/whoami; done | sed 's/.*cart=//' | sort -u | wc -l | grep -qx 3"
"$WD_BIN" down "$SHOP" >/dev/null
check "engine clean after down (replicas)" clean_app "$SHOP"

# --- raw TCP listener ---
cfg=$(mkconf "$ECHO" echo 'listeners.echo = {address = "127.0.0.1:0"}')
check "up -d echo" "$WD_BIN" up -d "$cfg"
eport=$(listener "$ECHO" echo)
check "a raw TCP listener works (line echo, uppercased by another group)" test "$(python3 -c "
import socket; s=socket.create_connection(('127.0.0.1', $eport), 5); s.sendall(b'hello weaver\n'); print(s.makefile().readline().strip())")" = "HELLO WEAVER"
"$WD_BIN" down "$ECHO" >/dev/null
check "engine clean after echo" clean_app "$ECHO"

# --- foreground up, Ctrl-C ---
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}')
"$WD_BIN" up "$cfg" >"$WD_TMP/fg.out" 2>"$WD_TMP/fg.err" &
fg=$!
check "foreground up serves" wait_for bash -c "p=\$(sed -n 's/.*listener \"shop\" at .*:\([0-9]*\)\$/\1/p' '$WD_TMP/fg.err' | head -1); curl -fsS http://127.0.0.1:\$p/healthz"
check "logs are printed pretty in the foreground" wait_for grep -q ' weaver.Main ' "$WD_TMP/fg.out"
kill -INT $fg
rc=0; wait $fg || rc=$?
check "Ctrl-C exits 0" test "$rc" = 0
check "Ctrl-C leaves the engine clean" clean_app "$SHOP"

# --- deployer SIGKILL, then down, then up again ---
check "up -d again" "$WD_BIN" up -d "$cfg"
pid=$("$WD_BIN" ps --json "$SHOP" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deployer_pid"])')
kill -9 "$pid"
check "ps reports the deployer gone" wait_for bash -c "'$WD_BIN' ps $SHOP | grep -q GONE"
check "down cleans up after a killed deployer" "$WD_BIN" down "$SHOP"
check "engine clean after SIGKILL + down" clean_app "$SHOP"
check "the next up works" "$WD_BIN" up -d "$cfg"
pid=$("$WD_BIN" ps --json "$SHOP" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deployer_pid"])')
kill -9 "$pid"
check "up after a killed deployer cleans the leftovers itself" "$WD_BIN" up -d "$cfg"
"$WD_BIN" down "$SHOP" >/dev/null

# --- the weaver CLI (v0.24.6) runs us as `weaver docker` when weaver-docker is on PATH ---
WEAVER=$WD_ROOT/build/go/bin/weaver
if [ -x "$WEAVER" ]; then
    bindir=$WD_TMP/bin; mkdir -p "$bindir"; ln -sf "$WD_BIN" "$bindir/weaver-docker"
    cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}')
    check "weaver docker up -d" env PATH="$bindir:$PATH" "$WEAVER" docker up -d "$cfg"
    port=$(listener "$SHOP" shop)
    check "weaver docker: the app answers" test "$(get "$port" /healthz)" = ok
    check "weaver docker ps" bash -c "PATH='$bindir:$PATH' '$WEAVER' docker ps $SHOP | grep -q 'deployer running'"
    check "weaver docker down" env PATH="$bindir:$PATH" "$WEAVER" docker down "$SHOP"
    check "engine clean after weaver docker down" clean_app "$SHOP"
else
    not_ok "the weaver CLI is built (make apps)"
fi

# --- a crash-looping replica: the deployer's threads do not pile up (one log follower and
# engine connection per dead container were kept until the end, issue 10) ---
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}')
check "up -d (crasher)" "$WD_BIN" up -d "$cfg"
port=$(listener "$SHOP" shop)
dpid=$("$WD_BIN" ps --json "$SHOP" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['deployer_pid'])")
threads() { ls "/proc/$dpid/task" | wc -l; }
fds() { ls "/proc/$dpid/fd" | wc -l; }
get "$port" /healthz >/dev/null; sleep 1
t0=$(threads) f0=$(fds)
crasher_restarts() { # of the Crasher container now running, 0 if none runs
    "$WD_BIN" ps --json "$SHOP" | python3 -c "import json,sys
r=[x for x in json.load(sys.stdin)[0]['replicas'] if x['group']=='shop.Crasher' and x['state']=='running']
print(r[0]['restarts'] if r else -1)"
}
export -f crasher_restarts
export WD_BIN SHOP
for i in 1 2 3 4 5; do # a panic may crash it more than once (weaver retries the call)
    get "$port" /panic >/dev/null 2>&1
    wait_for bash -c "[ \$(crasher_restarts) -ge $i ]"
done
sleep 1
t1=$(threads) f1=$(fds)
check "5 crashes and restarts: deployer threads $t0 -> $t1, descriptors $f0 -> $f1 (each dead container's log follower and engine connection are released)" \
    test "$t1" -le $((t0 + 1)) -a "$f1" -le $((f0 + 2))
check "down (crasher)" "$WD_BIN" down "$SHOP"

# --- a recorded deployer pid now belongs to an unrelated process (pid reuse): down must not
# signal it (issue 10; argv with "weaver-docker" in it was taken for our deployer) ---
bash -c 'exec -a weaver-docker-imposter sleep 120' &
imp=$!
on_cleanup "kill $imp"
docker network create --label "org.weaver-docker.test=$WD_TEST_RUN" \
    --label "org.weaver-docker.app=$SHOP" --label "org.weaver-docker.deployment=imposter-$WD_TEST_RUN" \
    --label org.weaver-docker.role=network --label "org.weaver-docker.deployer-pid=$imp" \
    --label "org.weaver-docker.deployer-host=$(hostname)" --label org.weaver-docker.deployer-start=1 \
    "wdt-$WD_TEST_RUN-imposter" >/dev/null
check "ps does not take a reused pid for a live deployer" bash -c "'$WD_BIN' ps $SHOP | grep -q 'GONE'"
"$WD_BIN" down "$SHOP" >/dev/null 2>&1
check "down leaves the process that reused the pid alone" kill -0 "$imp"
check "... and removes the stale deployment" bash -c "! docker network inspect wdt-$WD_TEST_RUN-imposter >/dev/null 2>&1"
kill "$imp" 2>/dev/null

# --- bad inputs: one line, non-zero exit, nothing left ---
bad() { # NAME PATTERN ENV... -- ARGS...
    local n=$1 pat=$2; shift 2
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
    local err rc=0
    err=$(env "${envs[@]}" "$WD_BIN" "$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && printf '%s' "$err" | grep -qi -- "$pat" && clean_app "$SHOP"; then
        ok "bad input: $n"
    else
        not_ok "bad input: $n (rc=$rc): $err"
    fi
}
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(120)' >"$WD_TMP/busy" &
busy=$!; on_cleanup "kill $busy"
wait_for test -s "$WD_TMP/busy"
cfg=$(mkconf "$SHOP" shop "listeners.shop = {address = \"127.0.0.1:$(cat "$WD_TMP/busy")\"}")
bad "port in use" "already in use" A=1 -- up -d "$cfg"
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}')
bad "engine unreachable" "docker\|engine" DOCKER_HOST=unix:///nonexistent/docker.sock -- up -d "$cfg"
cp "$APPS/shop" "$WD_TMP/shop-arm64"
printf '\xb7\x00' | dd of="$WD_TMP/shop-arm64" bs=1 seek=18 conv=notrunc 2>/dev/null
bad "binary for another architecture" "arm64" A=1 -- up -d "$WD_TMP/shop-arm64"
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}' 'groups."example.com/shop/Kart" = {replicas = 2}')
bad "[docker] groups names a component the app does not have" 'groups."example.com/shop/Kart": the app has no such component' A=1 -- up -d "$cfg"
# compose refuses what up refuses, with the same line (one check for both: engine/deploy/plan.c)
same_refusal() { # WHAT CFG
    local a b ra=0 rb=0
    a=$("$WD_BIN" up -d "$2" 2>&1 >/dev/null) || ra=$?
    b=$("$WD_BIN" compose -o "$WD_TMP/never.yml" "$2" 2>&1 >/dev/null) || rb=$?
    diag "up: $a"
    check "up and compose refuse $1 with the same one line, and write nothing" \
        bash -c "[ $ra != 0 ] && [ $rb != 0 ] && [ \"\$1\" = \"\$2\" ] && [ \"\$(printf '%s\n' \"\$1\" | wc -l)\" = 1 ] && [ ! -e '$WD_TMP/never.yml' ]" _ "$a" "$b"
}
same_refusal "a [docker] groups entry for a component the app lacks" "$cfg"
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}' 'groups."github.com/ServiceWeaver/weaver/Main" = {replicas = 2}' 'groups."example.com/shop/Pricer" = {replicas = 3}')
same_refusal "two [docker] groups entries for one colocation group (Main and Pricer)" "$cfg"
cfg=$(mkconf "$SHOP" shop 'listeners.shoop = {address = "127.0.0.1:0"}')
same_refusal "a [docker] listener the app does not declare" "$cfg"
# A typo in a component's own config section: weaver fails to construct it and never retries.
cfg=$(mkconf "$SHOP" shop 'listeners.shop = {address = "127.0.0.1:0"}')
sed -i 's/^Max = 1000/Maxx = 1000/' "$cfg"
rc=0; out=$(timeout 60 "$WD_BIN" up -d "$cfg" 2>&1) || rc=$?
check "a component that fails to construct: up -d shows why and fails fast" bash -c "[ $rc = 1 ] && printf '%s' \"\$1\" | grep -q 'unknown keys \[Maxx\]'" _ "$out"
check "... and leaves nothing behind" clean_app "$SHOP"
rc=0; out=$("$WD_BIN" down 2>&1) || rc=$?
check "down without an APP refuses to guess" bash -c "[ $rc = 2 ] && printf '%s' \"\$1\" | grep -q 'name the APP'" _ "$out"
check "no container, network or image of this run left" engine_clean
finish
