#!/bin/bash
# Real apps reach the world (issue 17): a weaver app that keeps its rows in a PostgreSQL on the
# host's loopback (a throwaway cluster of this test's own) through [docker] host_ports, with an
# env_file, a secret, a bind-mounted key file, a named volume, an extra network with a container
# of the test's own, extra_hosts, memory/pids limits and an out-of-memory kill; the same toml
# under --runtime=process; and every bad input of the [docker] world keys.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/pgstore" ] || { not_ok "test app pgstore is built (run make apps)"; finish; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || ! id postgres >/dev/null 2>&1; then
    skip_or_fail "PostgreSQL server is not installed (apt-get install postgresql)"
    finish
fi
APP=pgs-$WD_TEST_RUN
on_cleanup "'$WD_BIN' down --volumes $APP"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- a throwaway PostgreSQL on 127.0.0.1 (never the system's service) ---
PGDIR=$(mktemp -d /tmp/wd-pg.XXXXXX)
chmod 755 "$PGDIR"
chown postgres "$PGDIR"
PGPORT=$(free_port)
# under compose the manager relays host_ports to host.docker.internal (the default bridge's
# gateway): the cluster listens there too (loopback and that host-only bridge address; any
# container of this host may connect, as a developer's database on docker0 would allow)
GW=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null)
# Docker 20.10 leaves the default bridge's Gateway field empty: docker0's own address, then
[ -n "$GW" ] || GW=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
pg_stop() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1; rm -rf "$PGDIR"; }
on_cleanup pg_stop
if ! runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust >"$PGDIR/initdb.log" 2>&1 ||
    ! echo "host all all 0.0.0.0/0 trust" >>"$PGDIR/data/pg_hba.conf" ||
    ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1${GW:+,$GW} -k $PGDIR" start >/dev/null 2>&1; then
    not_ok "throwaway PostgreSQL started ($(tail -3 "$PGDIR/initdb.log" "$PGDIR/server.log" 2>/dev/null | tr '\n' ' '))"
    finish
fi
ok "throwaway PostgreSQL on 127.0.0.1:$PGPORT"
psql_q() { runuser -u postgres -- "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -Atqc "$1" 2>&1; }

# --- files the toml points at ---
mkdir -p "$WD_TMP/app/keys"
echo "key-material-$WD_TEST_RUN" >"$WD_TMP/app/keys/k.pem"
chmod 644 "$WD_TMP/app/keys/k.pem"
printf '# comment\nFROM_FILE=file-value\n\nOVERRIDDEN=from-file\n' >"$WD_TMP/app/app.env"
SECRET="s3cr3t-$WD_TEST_RUN"
printf '%s' "$SECRET" >"$WD_TMP/app/db_password"
chmod 600 "$WD_TMP/app/db_password"

# --- a network and a container of the test's own on it, FROM scratch like ours ---
NET=wdt-$WD_TEST_RUN-db
LBL="org.weaver-docker.test=$WD_TEST_RUN"
docker network create --label "$LBL" "$NET" >/dev/null
on_cleanup "docker rm -f wdt-$WD_TEST_RUN-echo; docker network rm $NET"
ECHOSRC=$WD_TMP/echo-img
mkdir -p "$ECHOSRC"
musl-gcc -static -O2 -o "$ECHOSRC/echo" "$WD_ROOT/tests/drivers/echo.c" -lpthread 2>"$WD_TMP/echo-build.log" ||
    gcc -static -O2 -o "$ECHOSRC/echo" "$WD_ROOT/tests/drivers/echo.c" -lpthread 2>>"$WD_TMP/echo-build.log"
printf 'FROM scratch\nCOPY echo /echo\nUSER 65532\nENTRYPOINT ["/echo", "serve", "7001"]\n' >"$ECHOSRC/Dockerfile"
ECHOIMG=$(docker build -q --label "$LBL" "$ECHOSRC" 2>"$WD_TMP/echo-img.log")
docker run -d --name "wdt-$WD_TEST_RUN-echo" --label "$LBL" --network "$NET" --network-alias echosrv \
    "$ECHOIMG" >/dev/null 2>"$WD_TMP/echo-run.log"
check "a FROM-scratch echo container of the test's own runs on $NET" test -n "$ECHOIMG"

mkconf() { # extra [docker] lines...
    {
        echo "[serviceweaver]"
        echo "name = \"$APP\""
        echo "binary = \"$APPS/pgstore\""
        echo "[docker]"
        echo 'listeners.store = {address = "127.0.0.1:0"}'
        for l in "$@"; do echo "$l"; done
        echo '["example.com/pgstore/Rows"]'
        echo "dsn = \"postgres://postgres:x@localhost:$PGPORT/postgres?sslmode=disable\""
    } >"$WD_TMP/app/weaver.toml"
    echo "$WD_TMP/app/weaver.toml"
}
WORLD=(
    "host_ports = [$PGPORT]"
    'env_file = "app.env"'
    'env = {FROM_ENV = "env-value", OVERRIDDEN = "from-env"}'
    'secrets = {db_password = "db_password"}'
    'volumes = ["./keys:/keys:ro", "data:/var/lib/pgs"]'
    "networks = [\"$NET\"]"
    'extra_hosts = {"db.local" = "10.1.2.3"}'
    'pids = 300'
    'groups."example.com/pgstore/Hog" = {memory = "48m"}'
)
listener() { "$WD_BIN" ps --json "$APP" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]['listeners']['store'].rsplit(':',1)[1])"; }
get() { curl -sS --max-time 20 "http://127.0.0.1:$port$1"; }

cfg=$(mkconf "${WORLD[@]}")
out=$("$WD_BIN" up -d "$cfg" 2>&1)
check "up -d with host_ports, env_file, secrets, volumes, networks, extra_hosts, limits ($(tail -1 <<<"$out"))" \
    test -n "$("$WD_BIN" ps --json "$APP" 2>/dev/null | grep -o listeners)"
port=$(listener 2>/dev/null)
check "a row written through the host's PostgreSQL (localhost:$PGPORT in the container)" \
    test "$(get '/put?k=apple&v=red')" = "put apple"
check "... and read back" test "$(get '/get?k=apple')" = "red"
check "... it is in the database on the host" test "$(psql_q "select v from kv where k='apple'")" = red
check "env_file value reaches the component" test "$(get '/env?name=FROM_FILE')" = file-value
check "env value reaches the component" test "$(get '/env?name=FROM_ENV')" = env-value
check "env replaces env_file for the same name" test "$(get '/env?name=OVERRIDDEN')" = from-env
check "secret readable at /run/secrets/db_password" test "$(get '/read?path=/run/secrets/db_password')" = "$SECRET"
check "bind-mounted key file" test "$(get '/read?path=/keys/k.pem')" = "key-material-$WD_TEST_RUN"
check "bind mount is read-only" bash -c "curl -sS 'http://127.0.0.1:$port/write?path=/keys/x&v=1' | grep -qi 'read-only'"
check "named volume is writable by the app" test "$(get '/write?path=/var/lib/pgs/f&v=kept')" = "wrote /var/lib/pgs/f"
check "root filesystem stays read-only" bash -c "curl -sS 'http://127.0.0.1:$port/write?path=/f&v=1' | grep -qi 'read-only'"
check "a container on an extra network is reached by its name" test "$(get '/dial?addr=echosrv:7001')" = ping
check "extra_hosts entry resolves" test "$(get '/resolve?host=db.local')" = 10.1.2.3
check "host.docker.internal resolves to the host" bash -c "[ -n \"\$(curl -sS 'http://127.0.0.1:$port/resolve?host=host.docker.internal' | grep -E '^[0-9.]+\$')\" ]"
ids=$(docker ps -q --filter "label=org.weaver-docker.app=$APP" | tr '\n' ' ')
check "docker inspect of the app containers shows no secret value" bash -c "! docker inspect $ids | grep -q '$SECRET'"
check "pids limit in docker inspect (300)" bash -c "for c in $ids; do [ \$(docker inspect -f '{{.HostConfig.PidsLimit}}' \$c) = 300 ] || exit 1; done"
hog=$(docker ps -q --filter "label=org.weaver-docker.app=$APP" --filter "label=org.weaver-docker.group=pgstore.Hog")
check "memory limit of the Hog group in docker inspect (48m)" test "$(docker inspect -f '{{.HostConfig.Memory}}' "$hog")" = $((48 << 20))
get '/alloc?mb=200' >/dev/null 2>&1
check "allocating past the limit is reported as an out-of-memory kill" \
    wait_for bash -c "'$WD_BIN' logs --system $APP 2>/dev/null | grep -qi 'out of memory'"
check "... and the group is restarted (answers again)" wait_for bash -c "curl -fsS 'http://127.0.0.1:$port/alloc?mb=1' | grep -q holding"
check "ps shows the out-of-memory restart" bash -c "'$WD_BIN' ps $APP | grep -i hog | grep -q 'out of memory'"
check "down" "$WD_BIN" down "$APP"
check "named volume kept across down" test -n "$(docker volume ls -q --filter name="${APP}_data")"

cfg=$(mkconf "${WORLD[@]}")
check "up -d again" "$WD_BIN" up -d "$cfg"
port=$(listener 2>/dev/null)
check "rows survive down/up (they are in the database)" test "$(get '/get?k=apple')" = red
check "the named volume's file survives down/up" test "$(get '/read?path=/var/lib/pgs/f')" = kept
# what the toml only names is part of the version too: a new env_file value and a new secret
# make the next up a rollover to them (the toml and the binary are the same)
printf 'FROM_FILE=file-value-2\nOVERRIDDEN=from-file\n' >"$WD_TMP/app/app.env"
printf '%s' "$SECRET-2" >"$WD_TMP/app/db_password"
out=$("$WD_BIN" up -d "$cfg" 2>&1)
check "a changed env_file and secret: up rolls over to them ($(tail -1 <<<"$out"))" \
    grep -q "rolled over from deployment" <<<"$out"
port=$(listener 2>/dev/null)
check "... the new env_file value reaches the component" test "$(get '/env?name=FROM_FILE')" = file-value-2
check "... and the new secret" test "$(get '/read?path=/run/secrets/db_password')" = "$SECRET-2"
check "down --volumes removes the named volume" bash -c "'$WD_BIN' down --volumes $APP | grep -q 'removed 1 volume' && [ -z \"\$(docker volume ls -q --filter name=${APP}_data)\" ]"

# --- the same toml (host_ports only) under --runtime=process: localhost is the host already ---
cfg=$(mkconf "host_ports = [$PGPORT]" 'env = {FROM_ENV = "proc-env"}' 'volumes = ["data:/var/lib/pgs"]')
"$WD_BIN" up --runtime=process "$cfg" >"$WD_TMP/proc.log" 2>&1 &
ppid=$!
check "--runtime=process with the same toml answers" wait_for grep -q 'pgstore ready' "$WD_TMP/proc.log"
pport=$(sed -n 's/.*pgstore ready addr=[^ ]*:\([0-9]*\).*/\1/p' "$WD_TMP/proc.log" | head -1)
lport=$(grep -o 'listener store.*127.0.0.1:[0-9]*' "$WD_TMP/proc.log" | grep -o '[0-9]*$' | head -1)
port=${lport:-$pport}
check "--runtime=process reads the row written from the containers" test "$(get '/get?k=apple')" = red
check "--runtime=process gives the weavelets the [docker] env too" test "$(get '/env?name=FROM_ENV')" = proc-env
check "--runtime=process says which container-only keys it ignores" grep -q 'ignores \[docker\] volumes' "$WD_TMP/proc.log"
kill -INT $ppid; wait $ppid 2>/dev/null

# --- the same toml under the generated compose file: the manager relays host_ports ---
export WEAVER_DOCKER_SHIM=$WD_SHIM
cfg=$(mkconf "host_ports = [$PGPORT]")
CF=$WD_TMP/pg-compose.yml
CPROJ=wdw$$
on_cleanup "docker-compose -f '$CF' -p $CPROJ down -t 2"
if "$WD_BIN" compose -o "$CF" "$cfg" >"$WD_TMP/cmp.out" 2>"$WD_TMP/cmp.err"; then
    ok "compose of the same toml"
else
    not_ok "compose of the same toml: $(cat "$WD_TMP/cmp.err")"
fi
port=$(sed -n 's/^listener store on port \([0-9]*\)$/\1/p' "$WD_TMP/cmp.out")
docker-compose -f "$CF" -p "$CPROJ" up -d >"$WD_TMP/cmpup.log" 2>&1
check "compose: answers" wait_for bash -c "curl -fsS 'http://127.0.0.1:$port/healthz'"
check "compose: reads the row written under up (the host's database, through the manager)" \
    test "$(get '/get?k=apple')" = red
check "compose: writes a row" test "$(get '/put?k=pear&v=green')" = "put pear"
check "... into the database on the host" test "$(psql_q "select v from kv where k='pear'")" = green
docker-compose -f "$CF" -p "$CPROJ" down -t 2 >/dev/null 2>&1
check "compose: down leaves nothing of the app" \
    bash -c "[ -z \"\$(docker ps -aq --filter label=com.docker.compose.project=$CPROJ)\" ]"

# --- a host port nothing listens on: the app's error, and our line saying why ---
DEAD=$(free_port)
printf '[serviceweaver]\nname = "%s"\nbinary = "%s"\n[docker]\nlisteners.store = {address = "127.0.0.1:0"}\nhost_ports = [%s]\n["example.com/pgstore/Rows"]\ndsn = "postgres://postgres:x@localhost:%s/postgres?sslmode=disable"\n' \
    "$APP" "$APPS/pgstore" "$DEAD" "$DEAD" >"$WD_TMP/dead.toml"
"$WD_BIN" up -d "$WD_TMP/dead.toml" >/dev/null 2>&1
port=$(listener 2>/dev/null)
msg=$(get '/put?k=a&v=b' 2>&1)
check "a host port nothing listens on: the app sees its connection fail ($msg)" bash -c "grep -qi 'reset\|refused\|EOF' <<<\"\$1\"" _ "$msg"
check "... and the deployer says why in the logs" wait_for bash -c "'$WD_BIN' logs --system $APP | grep -q \"nothing answers at the host's localhost:$DEAD\""
"$WD_BIN" down "$APP" >/dev/null 2>&1

# --- a component whose Init fails (its database is down): weaver never retries it ---
sed 's/^dsn = .*/&\nstrict_init = true/' "$WD_TMP/dead.toml" >"$WD_TMP/strict.toml"
rc=0; out=$("$WD_BIN" up -d "$WD_TMP/strict.toml" 2>&1) || rc=$?
check "up -d of an app whose component cannot construct fails, naming it and the error" \
    bash -c "[ $rc != 0 ] && grep -q 'Rows failed to construct (rows: ' <<<\"\$1\" && grep -q 'does not retry' <<<\"\$1\"" _ "$out"
check "... and leaves nothing" bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP)\" ]"
"$WD_BIN" up "$WD_TMP/strict.toml" >"$WD_TMP/strict.log" 2>&1 &
upid=$!
check "foreground up says which component failed to construct and why" \
    wait_for grep -q 'Rows failed to construct (rows: ' "$WD_TMP/strict.log"
check "ps shows the replica of the failed component unhealthy" \
    wait_for bash -c "'$WD_BIN' ps $APP | grep 'pgstore.Rows' | grep -q unhealthy"
kill -INT $upid; wait $upid 2>/dev/null

# --- Podman (its own service): host_ports and host.docker.internal (Podman 4.3 would write
# "host-gateway" into /etc/hosts literally; we give it the network's gateway) ---
if ! command -v podman >/dev/null; then
    skip_or_fail "podman is not installed: host_ports on Podman not checked"
else
    PSOCK=$WD_TMP/podman.sock
    rt=(); command -v runc >/dev/null && rt=(--runtime runc)
    podman "${rt[@]}" system service --time=0 "unix://$PSOCK" >"$WD_TMP/podman.log" 2>&1 &
    psvc=$!
    on_cleanup "DOCKER_HOST=unix://$PSOCK '$WD_BIN' down $APP-pm; podman --url unix://$PSOCK ps -aq --filter label=$LBL | xargs -r podman --url unix://$PSOCK rm -f; podman --url unix://$PSOCK network ls -q --filter label=$LBL | xargs -r podman --url unix://$PSOCK network rm -f; kill $psvc"
    wait_for test -S "$PSOCK"
    LPORT=$(free_port)
    python3 - "$LPORT" <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); s.settimeout(120)
def serve(c):
    line = c.makefile("rb").readline(); c.sendall(b"host got " + line); c.close()
try:
    while True:
        c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
except OSError:
    pass
PY
    lsrv=$!
    on_cleanup "kill $lsrv"
    printf '[serviceweaver]\nname = "%s-pm"\nbinary = "%s"\n[docker]\nlisteners.store = {address = "127.0.0.1:0"}\nhost_ports = [%s]\n["example.com/pgstore/Rows"]\ndsn = "postgres://x@localhost:1/x?sslmode=disable"\n' \
        "$APP" "$APPS/pgstore" "$LPORT" >"$WD_TMP/pm.toml"
    out=$(DOCKER_HOST=unix://$PSOCK "$WD_BIN" up -d "$WD_TMP/pm.toml" 2>&1)
    port=$(sed -n 's/.*listener store at 127.0.0.1:\([0-9]*\)/\1/p' <<<"$out")
    check "podman: host_ports reaches a server on the host's loopback" test "$(get "/dial?addr=localhost:$LPORT")" = "host got ping"
    check "podman: host.docker.internal resolves to the network's gateway" \
        bash -c "curl -sS 'http://127.0.0.1:$port/resolve?host=host.docker.internal' | grep -qE '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\$'"
    DOCKER_HOST=unix://$PSOCK "$WD_BIN" down "$APP-pm" >/dev/null 2>&1
fi

# --- bad input: one line naming key/file/line, exit != 0, nothing created ---
bad() { # NAME PATTERN [docker]-lines...
    local name=$1 pat=$2; shift 2
    local c rc=0 msg
    c=$(mkconf "$@")
    msg=$("$WD_BIN" up -d "$c" 2>&1) || rc=$?
    check "bad input: $name -> exit $rc: $msg" bash -c "[ $rc != 0 ] && [ \$(printf '%s\n' \"\$1\" | wc -l) = 1 ] && grep -q -- \"\$2\" <<<\"\$1\"" _ "$msg" "$pat"
    check "bad input: $name leaves nothing" bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP)\" ] && [ -z \"\$(docker network ls -q --filter label=org.weaver-docker.app=$APP)\" ] && [ -z \"\$(docker volume ls -q --filter label=org.weaver-docker.app=$APP)\" ]"
}
bad "missing bind path" "volumes.*does not exist" 'volumes = ["./nope:/nope", "v2:/v2"]'
bad "missing env file" "env_file.*nope.env" 'env_file = "nope.env"'
printf 'GOOD=1\nBAD LINE=2\n' >"$WD_TMP/app/bad.env"
bad "malformed env line" "bad.env:2" 'env_file = "bad.env"'
bad "unknown network" "networks.*no-such-net-$WD_TEST_RUN" "networks = [\"no-such-net-$WD_TEST_RUN\"]" 'volumes = ["v3:/v3"]'
mkdir -p "$WD_TMP/app/secretdir"
bad "secret that is a directory" "secrets.*directory" 'secrets = {d = "secretdir"}'
bad "memory below the engine's minimum" "memory" 'memory = "1m"'
finish
