#!/bin/bash
# `weaver-docker compose` (issue 6, docs/design/compose.md): the written file runs the shop app
# under docker-compose 1.29, under the Go Compose CLI (v5, built by tests/apps/build.sh) and on a
# one-node Swarm with no weaver-docker process on the host: correct answers, scaling, a crashed
# container restarted and routed to again, readable logs, nothing left after down / stack rm.
# Bad inputs give one line, a non-zero exit and no file.
# The [docker] world keys (issue 17) carried into the file, with the pgstore app: env, env_file,
# a secret, a bind mount, a named volume (shared with `up`), an external network, extra_hosts,
# memory/cpus/pids, checked through the app and docker inspect, under both compose tools and Swarm.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
[ -x "$WD_SHIM" ] || { not_ok "shim built ($WD_SHIM)"; finish; }
export WEAVER_DOCKER_SHIM=$WD_SHIM
DC=${WD_DOCKER_COMPOSE:-docker-compose}
command -v "$DC" >/dev/null || { not_ok "docker-compose installed"; finish; }
# the Go Compose CLI (github.com/docker/compose/v5), standalone, talking to DOCKER_HOST
DC5=${WD_DOCKER_COMPOSE_V5:-$WD_ROOT/build/go/bin/docker-compose-v5}

sed "s|^binary = .*|binary = \"$APPS/shop\"|" "$WD_ROOT/tests/apps/shop/weaver.toml" >"$WD_TMP/weaver.toml"
F=$WD_TMP/shop.yml
get() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT$1"; }
ms() { date +%s%3N; }
lab="label=org.weaver-docker.test=$WD_TEST_RUN"
# no container or network of this run is left, but the world part's external network $NET
nothing_left() {
    [ -z "$(docker ps -aq --filter "$lab")" ] &&
        [ -z "$(docker network ls --filter "$lab" --format '{{.Name}}' | grep -vx "${NET:-}")" ]
}

# ---- bad inputs: one line, exit != 0, no file (nothing for a compose tool to run) ----
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
printf '[serviceweaver]\nbinary = "%s"\n[docker]\nvolumes = ["./nope:/nope"]\nsecrets = {s = "%s"}\n' \
    "$APPS/shop" "$WD_TMP/broken.toml" >"$WD_TMP/nobind.toml"
bad "missing bind path" 1 "$WD_TMP/nobind.toml"
check "... the same line as up gives" test "$(cat "$WD_TMP/bad.err")" = "$("$WD_BIN" up -d "$WD_TMP/nobind.toml" 2>&1)"
check "... and no secrets copied" test ! -e "$WD_TMP/bad.yml.secrets"

# ---- generate ----
t0=$(ms)
if "$WD_BIN" compose -o "$F" -p "wdc$$" --save-images "$WD_TMP/img" "$WD_TMP/weaver.toml" \
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
# the manager is one static program: the image is the app + the shim + at most 2 MiB (issue 13)
IMG=$(sed -n 's/.*image: "\(sha256:[0-9a-f]*\)".*/\1/p' "$F" | head -1)
ISZ=$(docker image inspect -f '{{.Size}}' "$IMG" 2>/dev/null || echo 0)
BSZ=$(stat -c %s "$APPS/shop")
SSZ=$(stat -c %s "$WD_SHIM")
check "the image is the app + shim + $(((ISZ - BSZ - SSZ) / 1024)) KiB (<= 2 MiB; $ISZ bytes)" \
    test "$ISZ" -gt "$BSZ" -a $((ISZ - BSZ - SSZ)) -le $((2 * 1024 * 1024))
IMGTAR=$(ls "$WD_TMP"/img/shop-*.tar 2>/dev/null | head -1)
tar -xOf "$IMGTAR" --wildcards '*layer.tar' 2>/dev/null | tar -ti >"$WD_TMP/imgfiles" 2>/dev/null
check "the image holds the static manager and no shared library" \
    bash -c "grep -qx weaver-docker-manager '$WD_TMP/imgfiles' && ! grep -q '\\.so' '$WD_TMP/imgfiles'"
check "--save-images wrote a docker-archive ($(stat -c %s "$IMGTAR" 2>/dev/null) bytes)" \
    bash -c "tar -tf '$IMGTAR' | grep -q manifest.json"
"$WD_BIN" compose -o "$WD_TMP/second.yml" "$WD_TMP/weaver.toml" >/dev/null 2>&1
T2=$(sed -n 's/.*WEAVER_SHIM_TOKEN: "\([0-9a-f]*\)".*/\1/p' "$WD_TMP/second.yml" | head -1)
check "every file gets its own token" test -n "$T2" -a "$T2" != "$TOKEN"
check "the localhost listener is published on 127.0.0.1 only" \
    bash -c "grep -q '127.0.0.1:$PORT:$PORT/tcp' '$F' && ! grep -q endpoint_mode '$F'"
check "no version key (the Go Compose CLI warns it is obsolete)" bash -c "! grep -q '^version:' '$F'"
# the Swarm flavour of the same toml
FSW=$WD_TMP/swarm.yml
"$WD_BIN" compose --swarm -o "$FSW" "$WD_TMP/weaver.toml" >"$WD_TMP/genw.out" 2>"$WD_TMP/genw.err"
SPORT=$(sed -n 's/^listener shop on port \([0-9]*\)$/\1/p' "$WD_TMP/genw.out")
check "--swarm: one DNS answer per task and host-mode ports" \
    bash -c "grep -q 'endpoint_mode: dnsrr' '$FSW' && grep -q 'mode: host' '$FSW' && ! grep -q '127.0.0.1:' '$FSW'"
check "--swarm: version 3.8 (docker stack deploy before CLI 23 needs it)" grep -q '^version: "3.8"' "$FSW"
check "--swarm: says Swarm cannot keep the localhost listener on loopback" \
    grep -q 'Swarm cannot publish on one address' "$WD_TMP/genw.err"
check "--swarm: prints the stack command" grep -q 'docker stack deploy --resolve-image never' "$WD_TMP/genw.out"
if docker stack config --help >/dev/null 2>&1; then
    check "docker stack config accepts the --swarm file" bash -c "docker stack config -c '$FSW' >/dev/null"
fi

# ---- the [docker] world keys, with pgstore (docs/design/compose.md "World keys"): the file ----
W=$WD_TMP/world
mkdir -p "$W/keys" "$WD_TMP/out"
echo "key-material-$WD_TEST_RUN" >"$W/keys/k.pem"
chmod 644 "$W/keys/k.pem"
# docker's env-file format, as up reads it: quotes are kept, nothing is expanded
printf '# comment\nFROM_FILE=file-value\nOVERRIDDEN=from-file\nQUOTED="kept"\nEXPANDED=${HOME}\n' >"$W/app.env"
SECRET="s3cr3t-$WD_TEST_RUN"
printf '%s' "$SECRET" >"$W/db_password"
chmod 600 "$W/db_password"
NET=wdc-$WD_TEST_RUN-net
docker network create --label "org.weaver-docker.test=$WD_TEST_RUN" "$NET" >/dev/null
APPW=wdcpg-$WD_TEST_RUN
STACKW=wdw$$
FW=$WD_TMP/out/pg.yml
world_cleanup() { # whatever still uses the network or the volume goes first
    "$DC" -f "$FW" -p "$APPW" down -t 2 >/dev/null 2>&1
    [ -x "$DC5" ] && "$DC5" -f "$FW" -p "$APPW-v5" down -t 2 >/dev/null 2>&1
    docker stack rm "$STACKW" >/dev/null 2>&1
    for i in $(seq 1 100); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACKW")" ] && break
        sleep 0.2
    done
    docker network rm "$NET" >/dev/null 2>&1
    docker volume rm "${APPW}_data" >/dev/null 2>&1
    return 0
}
on_cleanup world_cleanup
pgconf() { # OUT extra [docker] lines...
    local out=$1
    shift
    {
        echo "[serviceweaver]"
        echo "name = \"$APPW\""
        echo "binary = \"$APPS/pgstore\""
        echo "[docker]"
        echo 'listeners.store = {address = "127.0.0.1:0"}'
        echo 'env_file = "app.env"'
        echo 'env = {FROM_ENV = "env-value", OVERRIDDEN = "from-env", DOLLAR = "a$b"}'
        echo 'secrets = {db_password = "db_password"}'
        echo 'volumes = ["./keys:/keys:ro", "data:/var/lib/pgs"]'
        echo 'extra_hosts = {"db.local" = "10.1.2.3"}'
        echo 'groups."example.com/pgstore/Hog" = {memory = "48m", cpus = 0.5}'
        echo 'groups."example.com/pgstore/Files" = {env = {GROUP_ONLY = "files"}}'
        for l in "$@"; do echo "$l"; done
        echo '["example.com/pgstore/Rows"]'
        echo 'dsn = "postgres://postgres:x@localhost:1/postgres?sslmode=disable"' # only /put, /get
    } >"$W/$out"
}
pget() { curl -sS --max-time 10 "http://127.0.0.1:$PGPORT$1"; }
pok() { [ "$(curl -fsS --max-time 5 "http://127.0.0.1:$PGPORT/healthz")" = ok ]; }
# host_ports under compose: the manager relays to host.docker.internal (host-gateway, the default
# bridge's address on the host), so the host service listens there (and on loopback)
GW=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null)
# Docker 20.10 leaves the default bridge's Gateway field empty: docker0's own address, then
[ -n "$GW" ] || GW=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
HP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$GW" "$HP" <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); s.settimeout(900)
def serve(c):
    line = c.makefile("rb").readline(); c.sendall(b"host got " + line); c.close()
try:
    while True:
        c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
except OSError:
    pass
PY
hpsrv=$!
[ -n "$GW" ] || not_ok "the host's address on the default bridge (docker0) is known"
on_cleanup "kill $hpsrv"
world=0
if [ ! -x "$APPS/pgstore" ]; then
    not_ok "test app pgstore is built (run make apps)"
else
    world=1
    pgconf world.toml "networks = [\"$NET\"]" 'pids = 300' "host_ports = [$HP]"
    if "$WD_BIN" compose -o "$FW" "$W/world.toml" >"$WD_TMP/pg.out" 2>"$WD_TMP/pg.err"; then
        ok "compose of a toml with every world key"
    else
        not_ok "compose of a toml with every world key: $(cat "$WD_TMP/pg.err")"
    fi
    PGPORT=$(sed -n 's/^listener store on port \([0-9]*\)$/\1/p' "$WD_TMP/pg.out")
    check "the world file sets pids_limit for docker compose" grep -q pids_limit "$FW"
    check "... and the limits of that group as mem_limit and cpus, not deploy.resources (Go Compose)" \
        bash -c "grep -q 'mem_limit: \"48M\"' '$FW' && ! grep -q 'resources:' '$FW'"
    check "--swarm leaves pids_limit out (stack rejects it) and says so" \
        bash -c "'$WD_BIN' compose --swarm -o '$WD_TMP/pgw-swarm.yml' '$W/world.toml' 2>&1 >/dev/null | grep -q 'pids is left out' && ! grep -q pids_limit '$WD_TMP/pgw-swarm.yml'"
    check "the secret's value is not in the file" bash -c "! grep -q '$SECRET' '$FW'"
    check "the secret is copied next to the file, uid 65532, mode 0400, dir 0711" \
        test "$(stat -c '%u %a' "$FW.secrets/db_password") $(stat -c %a "$FW.secrets")" = "65532 400 711"
    check "env_file values are carried (no env_file key)" bash -c "grep -q 'FROM_FILE: file-value' '$FW' && ! grep -q '^ *env_file:' '$FW'"
fi

# ---- one compose tool: TOOL (check names), COMPOSE (its command), PROJ, PGPROJ ----
dc() { "$COMPOSE" -f "$F" -p "$PROJ" "$@"; }
pdc() { "$COMPOSE" -f "$FW" -p "$PGPROJ" "$@"; }
# config: both tools must take the files as they are, and say nothing about them
config_checks() {
    check "$TOOL: config -q accepts the file" dc config -q
    if dc config >"$WD_TMP/config.out" 2>"$WD_TMP/config.err" && grep -q weaver-main "$WD_TMP/config.out"; then
        ok "$TOOL: config exits 0 and prints the services"
    else
        not_ok "$TOOL: config: $(head -c 300 "$WD_TMP/config.err")"
    fi
    check "$TOOL: config has nothing to warn about ($(head -c 200 "$WD_TMP/config.err"))" \
        test ! -s "$WD_TMP/config.err"
    if [ "$world" = 1 ]; then
        check "$TOOL: config -q accepts the world file" pdc config -q
        pdc config -q 2>"$WD_TMP/config.err" >/dev/null
        check "$TOOL: ... and has nothing to warn about ($(head -c 200 "$WD_TMP/config.err"))" \
            test ! -s "$WD_TMP/config.err"
    fi
}

# the shop app: up, scale, crashes, logs, ps, down
shop_run() {
    local plab="label=com.docker.compose.project=$PROJ" t0 ours p n i regs main_c bad_answers n0 n1 fgpid
    t0=$(ms)
    if dc up -d >"$WD_TMP/up.log" 2>&1 && wait_for get /healthz; then
        ok "$TOOL: up -d: answers after $(($(ms) - t0)) ms"
    else
        not_ok "$TOOL: up -d: $(tail -5 "$WD_TMP/up.log")"
        dc logs --no-color manager 2>&1 | tail -20 | sed 's/^/# /'
    fi
    check "$TOOL: /healthz -> ok" test "$(get /healthz)" = ok
    check "$TOOL: docker port: the listener on 127.0.0.1 only" \
        test "$(docker port "$(docker ps -q --filter "$plab" --filter label=com.docker.compose.service=manager | head -1)" | sort -u)" = "$PORT/tcp -> 127.0.0.1:$PORT"
    check "$TOOL: /buy?item=apple -> bought apple: 1 in cart (stock 9)" \
        test "$(get '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
    # no weaver-docker of ours runs on the host (the manager runs in its own PID namespace)
    ours=0
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$(readlink -f "$WD_BIN")" ] && ours=$((ours + 1))
    done
    check "$TOOL: no weaver-docker process on the host ($ours found)" test "$ours" = 0
    check "$TOOL: the manager prints pretty weaver logs (logs manager)" \
        bash -c "'$COMPOSE' -f '$F' -p '$PROJ' logs --no-color manager 2>/dev/null | grep -q 'shop.Cart .*added item'"
    wait_for bash -c "docker ps --filter '$lab' --filter '$plab' --filter health=healthy -q | wc -l | grep -qx 5"
    check "$TOOL: all 5 containers healthy (shim and manager healthchecks)" \
        test "$(docker ps --filter "$lab" --filter "$plab" --filter health=healthy -q | wc -l)" = 5
    check "$TOOL: ps --services lists the manager and the 4 groups" \
        test "$(dc ps --services 2>/dev/null | sort | tr '\n' ' ')" = "manager shop-cart shop-crasher shop-inventory weaver-main "
    check "$TOOL: ps -q names the 5 running containers" \
        test "$(dc ps -q 2>/dev/null | cut -c1-12 | sort | tr '\n' ' ')" = "$(docker ps -q --filter "$plab" | sort | tr '\n' ' ')"
    check "$TOOL: ps shows them up" bash -c "'$COMPOSE' -f '$F' -p '$PROJ' ps 2>/dev/null | grep -c ' Up ' | grep -qx 5"

    # ---- scale ----
    t0=$(ms)
    dc up -d --scale shop-cart=3 >"$WD_TMP/scale.log" 2>&1
    n=0
    for i in $(seq 1 60); do n=$(carts); [ "$n" = 3 ] && break; sleep 0.5; done
    check "$TOOL: --scale shop-cart=3: /whoami sees 3 cart replicas after $(($(ms) - t0)) ms" test "$n" = 3
    check "$TOOL: answers stay correct while scaled" bash -c "curl -fsS --max-time 5 'http://127.0.0.1:$PORT/buy?item=pear' | grep -q '^bought pear: '"
    regs=$(dc logs --no-color manager 2>/dev/null | grep -c 'group shop.Cart replica . registered')
    check "$TOOL: the manager registered 3 shop.Cart replicas ($regs)" test "$regs" -ge 3
    check "$TOOL: ps -q shows 7 containers" test "$(dc ps -q 2>/dev/null | wc -l)" = 7

    # ---- a crashed container is restarted and routing heals ----
    t0=$(ms)
    main_c=$(crash weaver-main)
    healed=0
    for i in $(seq 1 600); do # a restart under load can take a while: up to 2 minutes
        if get '/buy?item=plum' 2>/dev/null | grep -q '^bought plum'; then healed=1; break; fi
        sleep 0.2
    done
    check "$TOOL: main crashed (SIGKILL): restarted by policy, answers again after $(($(ms) - t0)) ms" test "$healed" = 1
    check "$TOOL: restart count of the crashed container >= 1" \
        test "$(docker inspect -f '{{.RestartCount}}' "$main_c")" -ge 1
    t0=$(ms)
    crash shop-cart >/dev/null
    bad_answers=0
    for i in $(seq 1 20); do get '/buy?item=fig' >/dev/null 2>&1 || bad_answers=$((bad_answers + 1)); done
    n=0
    for i in $(seq 1 60); do n=$(carts); [ "$n" = 3 ] && break; sleep 0.5; done
    check "$TOOL: a cart replica crashed: routing heals, 3 replicas again after $(($(ms) - t0)) ms ($bad_answers of 20 requests failed meanwhile)" test "$n" = 3
    dc logs --no-color manager 2>/dev/null | grep -E 'lost its link|exited with' | head -3 | sed 's/^/# /'

    # ---- a foreground `up` of the same app ends: it removes its own deployment only, not the
    # compose run that carries the same app label (issue 10) ----
    n0=$(docker ps -q --filter "$lab" --filter "$plab" | wc -l)
    "$WD_BIN" up "$WD_TMP/weaver.toml" >"$WD_TMP/fg.out" 2>"$WD_TMP/fg.err" &
    fgpid=$!
    on_cleanup "kill -9 $fgpid"
    check "$TOOL: a foreground up of the same app next to the compose run starts" \
        wait_for grep -q 'listener "shop" at' "$WD_TMP/fg.err"
    sleep 1
    kill -INT "$fgpid"
    wait "$fgpid" 2>/dev/null
    n1=$(docker ps -q --filter "$lab" --filter "$plab" | wc -l)
    check "$TOOL: ... and when it ends, the compose containers are left alone ($n0 before, $n1 after)" test "$n1" = "$n0"
    check "$TOOL: ... which still answer" wait_for get /healthz

    # ---- down ----
    t0=$(ms)
    dc down -t 5 >"$WD_TMP/down.log" 2>&1
    wait_for nothing_left
    check "$TOOL: down leaves nothing (containers, network) in $(($(ms) - t0)) ms" nothing_left
}
carts() { for i in $(seq 1 15); do get /whoami; echo; done | sed -n 's/.*cart=//p' | sort -u | wc -l; }
# `docker kill` counts as a manual stop on Docker 20.10 (no restart), so crash it instead: SIGKILL
# to its PID 1 from the host, which the engine treats like any other crash.
crash() { # SERVICE
    local c pid
    c=$(docker ps -q --filter "$lab" --filter "label=com.docker.compose.project=$PROJ" \
        --filter "label=com.docker.compose.service=$1" | head -1)
    pid=$(docker inspect -f '{{.State.Pid}}' "$c")
    kill -9 "$pid"
    echo "$c"
}

# the world file: every key through the app and docker inspect
world_run() {
    local t0 ids hog main
    t0=$(ms)
    if (cd / && pdc up -d >"$WD_TMP/pgup.log" 2>&1) && wait_for pok; then
        ok "$TOOL: up -d of the world file (from another directory): answers after $(($(ms) - t0)) ms"
    else
        not_ok "$TOOL: up -d of the world file: $(tail -5 "$WD_TMP/pgup.log")"
        pdc logs --no-color manager 2>&1 | tail -20 | sed 's/^/# /'
    fi
    grep -i warn "$WD_TMP/pgup.log" | head -3 | sed 's/^/# /'
    check "$TOOL: env_file value" test "$(pget '/env?name=FROM_FILE')" = file-value
    check "$TOOL: env value" test "$(pget '/env?name=FROM_ENV')" = env-value
    check "$TOOL: env replaces env_file for the same name" test "$(pget '/env?name=OVERRIDDEN')" = from-env
    check "$TOOL: env_file quotes kept and \${} not expanded, as docker's --env-file and up" \
        test "$(pget '/env?name=QUOTED') $(pget '/env?name=EXPANDED')" = '"kept" ${HOME}'
    check "$TOOL: \$ in an env value survives compose's interpolation" test "$(pget '/env?name=DOLLAR')" = 'a$b'
    check "$TOOL: a group's own env" test "$(pget '/env?name=GROUP_ONLY')" = files
    check "$TOOL: secret readable at /run/secrets/db_password" test "$(pget '/read?path=/run/secrets/db_password')" = "$SECRET"
    check "$TOOL: bind-mounted key file" test "$(pget '/read?path=/keys/k.pem')" = "key-material-$WD_TEST_RUN"
    check "$TOOL: bind mount is read-only" bash -c "curl -sS 'http://127.0.0.1:$PGPORT/write?path=/keys/x&v=1' | grep -qi 'read-only'"
    check "$TOOL: named volume is writable by the app" test "$(pget '/write?path=/var/lib/pgs/f&v=kept')" = "wrote /var/lib/pgs/f"
    check "$TOOL: root filesystem stays read-only" bash -c "curl -sS 'http://127.0.0.1:$PGPORT/write?path=/f&v=1' | grep -qi 'read-only'"
    check "$TOOL: extra_hosts entry resolves" test "$(pget '/resolve?host=db.local')" = 10.1.2.3
    check "$TOOL: host.docker.internal resolves to the host" bash -c "curl -sS 'http://127.0.0.1:$PGPORT/resolve?host=host.docker.internal' | grep -Eq '^[0-9.]+\$'"
    check "$TOOL: host_ports: localhost:$HP in a container reaches the host's service through the manager" \
        test "$(pget "/dial?addr=localhost:$HP")" = "host got ping"
    ids=$(docker ps -q --filter "label=com.docker.compose.project=$PGPROJ" --filter label=org.weaver-docker.role=weavelet | tr '\n' ' ')
    check "$TOOL: 4 group containers" test "$(echo $ids | wc -w)" = 4
    check "$TOOL: docker inspect shows no secret value" bash -c "! docker inspect $ids | grep -q '$SECRET'"
    check "$TOOL: pids limit in docker inspect (300)" bash -c "for c in $ids; do [ \$(docker inspect -f '{{.HostConfig.PidsLimit}}' \$c) = 300 ] || exit 1; done"
    hog=$(docker ps -q --filter "label=com.docker.compose.project=$PGPROJ" --filter label=com.docker.compose.service=pgstore-hog)
    check "$TOOL: memory and cpus of the Hog group in docker inspect (48m, 0.5)" \
        test "$(docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' "$hog")" = "$((48 << 20)) 500000000"
    check "$TOOL: every group container is on the external network $NET" \
        bash -c "for c in $ids; do docker inspect -f '{{json .NetworkSettings.Networks}}' \$c | grep -q '\"$NET\"' || exit 1; done"
    main=$(docker ps -q --filter "label=com.docker.compose.project=$PGPROJ" --filter label=com.docker.compose.service=weaver-main)
    check "$TOOL: another group does not get the Files group's env" bash -c "! docker inspect -f '{{json .Config.Env}}' $main | grep -q GROUP_ONLY"
    pdc down -t 5 >"$WD_TMP/pgdown.log" 2>&1
    check "$TOOL: down leaves nothing but the named volume ${APPW}_data" bash -c "
        [ -z \"\$(docker ps -aq --filter 'label=com.docker.compose.project=$PGPROJ')\" ] &&
        [ -z \"\$(docker network ls -q --filter 'label=org.weaver-docker.app=$APPW')\" ] &&
        [ \"\$(docker volume ls -q --filter 'label=org.weaver-docker.test=$WD_TEST_RUN')\" = ${APPW}_data ]"
    check "$TOOL: the external network is left alone" bash -c "docker network inspect '$NET' >/dev/null"
}

# tool NAME COMMAND PROJECT_SUFFIX: everything above under one compose tool; each tool has
# projects of its own, so a run never touches the other's containers
tool() {
    TOOL=$1 COMPOSE=$2 PROJ=wdc$3$$ PGPROJ=$APPW$3
    on_cleanup "$COMPOSE -f $F -p $PROJ down -t 2"
    config_checks
    shop_run
    [ "$world" = 1 ] && world_run
}
tool "docker-compose 1.29" "$DC" ""
if [ -x "$DC5" ]; then
    v5=$(go version -m "$DC5" 2>/dev/null | awk '$2 == "github.com/docker/compose/v5" { print $3 }')
    diag "Go Compose CLI $DC5: github.com/docker/compose/v5 ${v5:-(version unknown)}, '$("$DC5" version 2>&1 | head -1)'"
    tool "compose v5" "$DC5" -v5
else
    skip_or_fail "compose v5: the Go Compose CLI is not built ($DC5; run make apps)"
fi
if [ "$world" = 1 ]; then
    check "nothing is attached to the external network any more (the test removes it)" \
        bash -c "docker network rm '$NET' >/dev/null"
fi

# ---- Swarm ----
state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)
made_swarm=0
STACK=wds$$
NETOV=wdc-$WD_TEST_RUN-ov
swarm_cleanup() {
    docker stack rm "$STACK" "$STACKW" >/dev/null 2>&1
    for i in $(seq 1 100); do [ -z "$(docker ps -aq --filter "$lab")" ] && break; sleep 0.2; done
    docker network rm "$NETOV" >/dev/null 2>&1
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
        skip_or_fail "swarm: docker swarm init failed: $(echo "$out" | tr '\n' ' ')"
    fi
else
    skip_or_fail "swarm: node state is '$state'"
fi
on_cleanup swarm_cleanup
if [ "$swarm_ok" = 1 ] && [ -x "$APPS/pgstore" ]; then
    # the world file for swarm: an external network must be a swarm-scoped (overlay) one, and
    # pids is left out (stack rejects pids_limit)
    docker network create -d overlay --attachable --label "org.weaver-docker.test=$WD_TEST_RUN" "$NETOV" >/dev/null
    pgconf swarm.toml "networks = [\"$NETOV\"]"
    FS=$WD_TMP/out/pgswarm.yml
    "$WD_BIN" compose --swarm -o "$FS" "$W/swarm.toml" >"$WD_TMP/pgs.out" 2>"$WD_TMP/pgs.err"
    PGPORT=$(sed -n 's/^listener store on port \([0-9]*\)$/\1/p' "$WD_TMP/pgs.out")
    check "swarm: the world file has no pids_limit" bash -c "! grep -q pids_limit '$FS'"
    (cd / && docker stack deploy --resolve-image never -c "$FS" "$STACKW" >"$WD_TMP/stackw.log" 2>&1) &
    stackw_pid=$!
fi
if [ "$swarm_ok" = 1 ]; then
    t0=$(ms)
    PORT=$SPORT
    if docker stack deploy --resolve-image never -c "$FSW" "$STACK" >"$WD_TMP/stack.log" 2>&1 &&
        wait_for get /healthz || wait_for get /healthz || wait_for get /healthz; then
        ok "docker stack deploy: answers after $(($(ms) - t0)) ms"
    else
        not_ok "docker stack deploy: $(tail -3 "$WD_TMP/stack.log")"
        docker service logs --raw "${STACK}_manager" 2>&1 | tail -20 | sed 's/^/# /'
    fi
    check "swarm: /buy?item=apple -> bought apple: 1 in cart (stock 9)" \
        test "$(get '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
    check "swarm: /whoami names main and cart" bash -c "curl -fsS --max-time 5 http://127.0.0.1:$PORT/whoami | grep -q '^main=.* cart=.'"
    if [ -n "${stackw_pid:-}" ]; then
        wait "$stackw_pid"
        if wait_for pok || wait_for pok; then
            ok "swarm: the world file answers"
        else
            not_ok "swarm: the world file: $(tail -3 "$WD_TMP/stackw.log" | tr '\n' ' ')"
            docker service logs --raw "${STACKW}_manager" 2>&1 | tail -20 | sed 's/^/# /'
        fi
        check "swarm: env_file and env values" test "$(pget '/env?name=FROM_FILE') $(pget '/env?name=OVERRIDDEN') $(pget '/env?name=DOLLAR')" = 'file-value from-env a$b'
        check "swarm: secret readable at /run/secrets/db_password (uid 65532, mode 0400 applied)" \
            test "$(pget '/read?path=/run/secrets/db_password')" = "$SECRET"
        check "swarm: the secret's uid, gid and mode in the service" \
            bash -c "docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}' ${STACKW}_pgstore-files | grep -q '\"UID\":\"65532\",\"GID\":\"65532\",\"Mode\":256'"
        check "swarm: bind-mounted key file" test "$(pget '/read?path=/keys/k.pem')" = "key-material-$WD_TEST_RUN"
        check "swarm: the named volume holds what docker-compose wrote (the same ${APPW}_data)" \
            test "$(pget '/read?path=/var/lib/pgs/f')" = kept
        check "swarm: extra_hosts entry resolves" test "$(pget '/resolve?host=db.local')" = 10.1.2.3
        hog=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACKW}_pgstore-hog" | head -1)
        check "swarm: memory and cpus of the Hog group in docker inspect" \
            test "$(docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' "$hog" 2>/dev/null)" = "$((48 << 20)) 500000000"
        check "swarm: the group services are on the overlay network $NETOV" \
            bash -c "docker network inspect -f '{{json .Containers}}' $NETOV | grep -q ${STACKW}_pgstore-files"
        docker stack rm "$STACKW" >/dev/null 2>&1
        # Swarm stops each task with its grace period and removes networks lazily: on a loaded
        # machine that has taken more than 30 s, so wait up to 2 minutes for it
        for i in $(seq 1 600); do [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACKW")" ] && break; sleep 0.2; done
        check "swarm: stack rm removes the world stack's containers and secret" bash -c "
            [ -z \"\$(docker ps -aq --filter 'label=com.docker.stack.namespace=$STACKW')\" ] &&
            [ -z \"\$(docker secret ls -q --filter 'label=com.docker.stack.namespace=$STACKW')\" ]"
        wait_for docker network rm "$NETOV" # the test's own overlay network
    fi
    t0=$(ms)
    docker stack rm "$STACK" >/dev/null 2>&1
    for i in $(seq 1 600); do nothing_left && break; sleep 0.2; done # up to 2 minutes, as above
    check "docker stack rm leaves nothing in $(($(ms) - t0)) ms" nothing_left
    swarm_cleanup
    made_swarm=0
    if [ "$state" = inactive ]; then
        check "swarm left again" test "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive
        [ "$had_gwbridge" = 0 ] && check "docker_gwbridge removed" bash -c "! docker network inspect docker_gwbridge >/dev/null 2>&1"
    fi
fi
finish
