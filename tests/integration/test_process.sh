#!/bin/bash
# `weaver-docker up --runtime=process` with real weaver v0.24.6 and v0.24.3 weavelets (issue 3):
# HTTP answers through the listener, a call chain across groups, a routed component, config
# sections, formatted logs at every level, a panicking component restarted, Ctrl-C leaving no
# process, and every bad input giving one clear line and a non-zero exit.
source "$(dirname "$0")/lib.sh"
APPS=$WD_ROOT/build/go/apps
for a in shop shop-v0243; do
    [ -x "$APPS/$a" ] || { not_ok "test app $a is built (run make apps)"; finish; }
done

# The deployers' control-socket directories go under a TMPDIR of this test's own, so another
# deployment running on the machine meanwhile cannot look like one of ours left behind.
export TMPDIR=$WD_TMP/tmp
mkdir -p "$TMPDIR"
ls -d "$TMPDIR"/weaver-docker-* 2>/dev/null | sort >"$WD_TMP/dirs.before"
# Private copies of the binaries, so process checks see only this test's weavelets.
mkdir -p "$WD_TMP/apps"
for a in shop shop-v0243; do
    cp "$APPS/$a" "$WD_TMP/apps/$a"
    sed "s|^binary = .*|binary = \"$WD_TMP/apps/$a\"|" "$WD_ROOT/tests/apps/$a/weaver.toml" >"$WD_TMP/$a.toml"
done
APPS=$WD_TMP/apps

# start_up NAME CONFIG: runs `up` in the background, sets PID_<NAME> and PORT_<NAME>
start_up() {
    local name=$1 cfg=$2
    "$WD_BIN" up --runtime=process --traces "$WD_TMP/$name.traces" "$cfg" >"$WD_TMP/$name.out" 2>"$WD_TMP/$name.err" &
    eval "PID_$name=$!"
    on_cleanup "kill -9 $! 2>/dev/null"
    local i port=""
    for i in $(seq 1 100); do
        port=$(sed -n 's/.*listener "shop" at .*:\([0-9]*\)$/\1/p' "$WD_TMP/$name.err" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    eval "PORT_$name=$port"
}
get() { curl -fsS --max-time 10 "http://127.0.0.1:$1$2"; }

exercise() { # NAME: the app answers correctly, logs, panics, restarts, stops
    local name=$1 pid port
    start_up "$name" "$2"
    eval "pid=\$PID_$name port=\$PORT_$name"
    check "$name: listener address printed" test -n "$port"
    check "$name: app answers /healthz" wait_for get "$port" /healthz
    check "$name: call chain Main -> Cart -> Inventory (routed)" \
        test "$(get "$port" '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
    check "$name: second call keeps state" \
        test "$(get "$port" '/buy?item=apple')" = "bought apple: 2 in cart (stock 8)"
    check "$name: colocated component (Pricer)" test -n "$(get "$port" '/price?item=pear')"
    check "$name: config section reaches the component" \
        test "$(get "$port" /config)" = "store=weaver-docker shop max=100"
    get "$port" /logs >/dev/null
    sleep 1
    local out=$WD_TMP/$name.out
    check "$name: logs formatted like weaver (component column)" grep -q ' shop.Cart ' "$out"
    for l in D I W E; do
        check "$name: a log line at level $l" grep -q "^$l[0-9]\{4\} " "$out"
    done
    check "$name: structured attributes printed" grep -q '=' "$out"
    check "$name: trace spans received and written" wait_for python3 -c "
import json; spans=[json.loads(l) for l in open('$WD_TMP/$name.traces')]
assert spans and all(s['name'] and len(s['trace_id'])==32 and len(s['span_id'])==16 for s in spans), spans[:3]"
    # The crasher panics: reported clearly, restarted, and the app keeps answering.
    get "$port" /panic >/dev/null 2>&1
    check "$name: the crash is reported" wait_for grep -q 'group shop.Crasher replica 0 .*exited with status 2 (a Go panic); restarting' "$WD_TMP/$name.err"
    check "$name: the panic trace is shown" grep -q 'panic' "$out"
    check "$name: app still answers after the crash" \
        test "$(get "$port" '/buy?item=pear')" = "bought pear: 1 in cart (stock 9)"
    get "$port" /panic >/dev/null 2>&1
    check "$name: the restarted crasher served (and crashed) again" \
        wait_for grep -q 'restart #2' "$WD_TMP/$name.err"
    # Ctrl-C: everything stops, exit 0, no process left
    kill -INT "$pid"
    local rc=0
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" || rc=$?
    check "$name: Ctrl-C exits 0" test "$rc" = 0
    check "$name: no weavelet process left" bash -c "! pgrep -f '^$APPS/' >/dev/null"
    check "$name: 'stopped' reported" grep -q 'stopped' "$WD_TMP/$name.err"
}

exercise shop "$WD_TMP/shop.toml"
exercise shop_old "$WD_TMP/shop-v0243.toml"

# --- out of descriptors: the listener pauses instead of spinning, and recovers (issue 10) ---
start_up fd "$WD_TMP/shop.toml"
check "fd: app answers" wait_for get "$PORT_fd" /healthz
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Both parities of the limit: each client costs the deployer two descriptors (client and
# backend), so one limit leaves an odd one over that an accept could take with none to dial.
for lim in 49 48; do # (a limit can be lowered, not raised)
    check "fd ($lim): descriptor limit set" prlimit --pid "$PID_fd" --nofile=$lim:$lim
    python3 - "$PORT_fd" >"$WD_TMP/fd-$lim.out" 2>&1 <<'PY' &
import socket, sys, time
conns = []
for _ in range(120):  # far past the deployer's descriptors
    try:
        conns.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
time.sleep(3.5)
dropped = 0  # closed by the deployer instead of being left queued or served
for c in conns:
    c.setblocking(False)
    try:
        if c.recv(1) == b"":
            dropped += 1
    except BlockingIOError:
        pass
    except OSError:
        dropped += 1
print(len(conns), dropped, flush=True)
PY
    holder=$!
    sleep 1.5
    t0=$(ticks "$PID_fd"); sleep 2; t1=$(ticks "$PID_fd")
    check "fd ($lim): out of descriptors, the deployer does not spin ($((t1 - t0)) CPU ticks in 2 s)" test $((t1 - t0)) -lt 60
    wait $holder
    read -r held dropped <"$WD_TMP/fd-$lim.out"
    check "fd ($lim): no client dropped while out of descriptors ($dropped of $held)" test "$dropped" = 0
    check "fd ($lim): answers again once the connections closed" wait_for get "$PORT_fd" /healthz
done
check "fd: says so once ($(grep -c 'not accepting for 100 ms' "$WD_TMP/fd.err") lines)" \
    test "$(grep -c 'not accepting for 100 ms' "$WD_TMP/fd.err")" = 1
kill -INT "$PID_fd"; wait "$PID_fd" 2>/dev/null

# --- bad inputs: one line, non-zero exit, nothing left behind ---
bad() { # NAME EXPECTED_RC PATTERN ARGS...
    local n=$1 want=$2 pat=$3; shift 3
    local err rc=0
    err=$("$WD_BIN" up --runtime=process "$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" = "$want" ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && printf '%s' "$err" | grep -qi -- "$pat"; then
        ok "bad input: $n"
    else
        not_ok "bad input: $n (rc=$rc, want $want): $err"
    fi
}
bad "missing file" 1 "no such file\|does not exist\|not found" /nonexistent/weaver.toml
printf 'hello\n' >"$WD_TMP/notelf"; chmod +x "$WD_TMP/notelf"
bad "not an ELF binary" 2 "not an ELF" "$WD_TMP/notelf"
bad "a Go binary that is not a weaver app" 2 "not a Service Weaver application" "$(command -v gofmt || echo /usr/local/go/bin/gofmt)"
cfgdir=$WD_TMP/cfg; mkdir -p "$cfgdir"
cat >"$cfgdir/unknown.toml" <<EOT
[serviceweaver]
binary = "$APPS/shop"
[docker]
replica = 2
EOT
bad "unknown [docker] key" 2 "unknown.toml:4: .*replica" "$cfgdir/unknown.toml"
printf '[serviceweaver]\nbinary = "%s\n' "$APPS/shop" >"$cfgdir/malformed.toml"
bad "malformed TOML" 2 "malformed.toml:2:" "$cfgdir/malformed.toml"
# our state directory must be ours alone (issue 10): not a symlink, not writable by others
mkdir -p "$WD_TMP/xs1" "$WD_TMP/xs2/weaver-docker" "$WD_TMP/elsewhere"
ln -s "$WD_TMP/elsewhere" "$WD_TMP/xs1/weaver-docker"
chmod 777 "$WD_TMP/xs2/weaver-docker"
XDG_STATE_HOME=$WD_TMP/xs1 bad "state directory is a symlink" 1 "is not a directory (a symlink?)" "$WD_TMP/shop.toml"
XDG_STATE_HOME=$WD_TMP/xs2 bad "state directory writable by others" 1 "is not yours alone" "$WD_TMP/shop.toml"
check "nothing was written through the symlink" test -z "$(ls -A "$WD_TMP/elsewhere")"
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$WD_TMP/busy" &
busy=$!; on_cleanup "kill $busy"
wait_for test -s "$WD_TMP/busy"; bport=$(cat "$WD_TMP/busy")
cat >"$cfgdir/busy.toml" <<EOT
[serviceweaver]
binary = "$APPS/shop"
[docker]
listeners.shop = {address = "127.0.0.1:$bport"}
EOT
bad "listener address in use" 1 "already in use" "$cfgdir/busy.toml"
cat >"$cfgdir/nolistener.toml" <<EOT
[serviceweaver]
binary = "$APPS/shop"
[docker]
listeners.nope = {address = "127.0.0.1:0"}
EOT
bad "listener the app does not declare" 2 'listener "nope" is not declared' "$cfgdir/nolistener.toml"
kill "$busy" 2>/dev/null
# A weavelet that cannot even be launched (control socket path over 107 bytes) ends the run at
# once with one line, instead of hanging.
long=$WD_TMP/$(printf 'd%.0s' $(seq 1 90)); mkdir -p "$long"
rc=0; out=$(TMPDIR=$long timeout -k 5 20 "$WD_BIN" up --runtime=process "$WD_TMP/shop.toml" 2>&1 >/dev/null) || rc=$?
check "a launch failure ends up at once with one clear line" bash -c "[ $rc = 1 ] && printf '%s' \"\$1\" | grep -q 'over 107 bytes'" _ "$out"
ls -d "$TMPDIR"/weaver-docker-* "$WD_TMP"/ddd*/weaver-docker-* 2>/dev/null | sort >"$WD_TMP/dirs.after"
check "no control-socket directory left behind" test -z "$(comm -13 "$WD_TMP/dirs.before" "$WD_TMP/dirs.after")"
check "no weavelet process left at all" bash -c "! pgrep -f '^$APPS/' >/dev/null"
finish
