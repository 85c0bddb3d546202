#!/bin/bash
# The container shim (images/shim, docs/design/shim-link.md): PID 1 duties and the TCP bridge,
# first as a plain process (PR_SET_CHILD_SUBREAPER), then as PID 1 of a FROM-scratch container.
# Needs musl-gcc (builds tests/shim/peer.c, a fake weavelet) and python3 (tests/shim/drive.py,
# a fake deployer). WD_SHIM = the built shim.
source "$(dirname "$0")/lib.sh"

SHIM=$WD_SHIM
PEER=$WD_TMP/peer
DRIVE="python3 $WD_ROOT/tests/shim/drive.py"
TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

if [ ! -x "$SHIM" ]; then not_ok "shim built ($SHIM)"; finish; fi
if ! musl-gcc -static -Os -Wall -Wextra -Werror -o "$PEER" "$WD_ROOT/tests/shim/peer.c"; then
    not_ok "build tests/shim/peer.c"
    finish
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ms() { date +%s%3N; }
# wait_exit PID SECS: waits for a background job (not in a subshell: only the parent can
# wait); sets rc to its status, or "timeout"
wait_exit() {
    local i
    rc=timeout
    for i in $(seq 1 $(($2 * 20))); do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"
            rc=$?
            return
        fi
        sleep 0.05
    done
}
quiet() { "$@" >/dev/null; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---- outside a container: exit codes ---------------------------------------------------------
export WEAVER_SHIM_DIR=$WD_TMP/plain WEAVER_SHIM_LOG=warn
bad=""
for c in 0 1 2 3 7 42 99 100 124 125 126 127 128 129 130 137 143 200 254 255; do
    "$SHIM" sh -c "exit $c"
    rc=$?
    [ "$rc" = "$c" ] || bad="$bad $c->$rc"
done
check "exit codes 0..255 pass through${bad:+ (bad:$bad)}" test -z "$bad"
"$SHIM" -- "$WD_TMP/does-not-exist" 2>/dev/null
check "exec of a missing program exits 127" test $? -eq 127
printf 'not a program\n' >"$WD_TMP/noexec"
chmod 644 "$WD_TMP/noexec"
"$SHIM" "$WD_TMP/noexec" 2>/dev/null
check "exec of a non-executable file exits 126" test $? -eq 126
"$SHIM" sh -c 'kill -KILL $$'
check "a child killed by SIGKILL gives 137" test $? -eq 137
"$SHIM" --frobnicate 2>/dev/null
check "unknown option exits 125" test $? -eq 125
WEAVER_SHIM_TOKEN=abc "$SHIM" true 2>/dev/null
check "malformed token exits 125" test $? -eq 125
"$SHIM" 2>/dev/null
check "missing PROGRAM exits 125" test $? -eq 125
check "--version" sh -c "'$SHIM' --version | grep -q '^weaver-docker-shim '"

# ---- signals ---------------------------------------------------------------------------------
"$SHIM" sleep 30 &
pid=$!
sleep 0.3
t0=$(now_ms)
kill -TERM $pid
wait_exit $pid 5
check "SIGTERM is forwarded: exit 143 (got $rc in $(($(now_ms) - t0)) ms)" test "$rc" = 143
"$SHIM" sleep 30 &
pid=$!
sleep 0.3
kill -INT $pid
wait_exit $pid 5
check "SIGINT is forwarded: exit 130 (got $rc)" test "$rc" = 130
"$SHIM" sh -c 'trap "echo usr1 >>$0.log" USR1; trap "echo hup >>$0.log" HUP;
               trap "exit 7" TERM; while :; do sleep 0.05; done' "$WD_TMP/sig" 2>/dev/null &
pid=$!
sleep 0.3
kill -USR1 $pid
sleep 0.3
kill -HUP $pid
sleep 0.3
kill -TERM $pid
wait_exit $pid 5
check "child's own exit code after a trapped SIGTERM (got $rc)" test "$rc" = 7
check "SIGUSR1 and SIGHUP reach the child" \
    test "$(tr '\n' ' ' <"$WD_TMP/sig.log" 2>/dev/null)" = "usr1 hup "
"$SHIM" sh -c 'kill -TERM $PPID; sleep 0.5; exit 5'
check "SIGTERM sent to the shim by its own child comes back to the child" test $? = 143
# WEAVER_SHIM_DRAIN_MS: SIGTERM is held back for the drain, and another signal meanwhile (a
# SIGHUP, SIGUSR1, SIGWINCH) is forwarded without cancelling it
WEAVER_SHIM_DRAIN_MS=800 "$SHIM" sh -c 'trap "echo hup >>$0.log" HUP; trap "exit 9" TERM;
               while :; do sleep 0.05; done' "$WD_TMP/drain" 2>/dev/null &
pid=$!
sleep 0.3
t0=$(now_ms)
kill -TERM $pid
sleep 0.2
kill -HUP $pid
wait_exit $pid 5
dt=$(($(now_ms) - t0))
drc=$rc
[ "$rc" = timeout ] && kill -INT $pid && wait_exit $pid 5 # SIGINT is never held back
rc=$drc
check "drain: SIGTERM passed on after WEAVER_SHIM_DRAIN_MS despite a SIGHUP (rc $rc in $dt ms)" \
    test "$rc" = 9 -a "$dt" -ge 700
check "drain: the SIGHUP reached the child" test "$(cat "$WD_TMP/drain.log" 2>/dev/null)" = hup

# ---- zombies and the token -------------------------------------------------------------------
"$SHIM" -- "$PEER" "$WEAVER_SHIM_DIR" --no-dial --orphans 5 --delay 0 2>/dev/null &
pid=$!
sleep 0.5
kids=$(ps -o pid= --ppid $pid | wc -l)
sleep 1.5
zombies=$(ps -o stat= --ppid $pid | grep -c Z)
kids_after=$(ps -o pid= --ppid $pid | wc -l)
check "orphaned grandchildren are adopted ($kids children) and reaped ($zombies zombies, $kids_after left)" \
    test "$kids" -ge 6 -a "$zombies" -eq 0 -a "$kids_after" -eq 1
kill -TERM $pid
wait $pid 2>/dev/null

WEAVER_SHIM_TOKEN=$TOKEN WEAVER_SHIM_PORT=$(free_port) WEAVELET_ARGS='CgRzaG9w==' \
    "$SHIM" sh -c 'env; echo ===; tr "\0" "\n" </proc/$PPID/environ' >"$WD_TMP/env.out" 2>/dev/null
check "the child does not see WEAVER_SHIM_TOKEN" \
    sh -c "sed '/^===/q' '$WD_TMP/env.out' | grep -c WEAVER_SHIM_TOKEN | grep -qx 0"
check "WEAVELET_ARGS passes through" grep -qx 'WEAVELET_ARGS=CgRzaG9w==' "$WD_TMP/env.out"
check "the token is blanked in the shim's /proc/PID/environ" \
    sh -c "! grep -q '$TOKEN' '$WD_TMP/env.out'"

# ---- the bridge, outside a container ---------------------------------------------------------
PORT=$(free_port)
D1=$WD_TMP/b1
WEAVER_SHIM_TOKEN=$TOKEN WEAVER_SHIM_PORT=$PORT WEAVER_SHIM_DIR=$D1 WEAVER_SHIM_ORPHAN_SECS=0 \
    "$SHIM" -- "$PEER" "$D1" --delay 500 2>"$WD_TMP/b1.log" &
SPID=$!
on_cleanup "kill -KILL $SPID"
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
drive() { $DRIVE 127.0.0.1 "$PORT" "$TOKEN" "$@"; }
rss0=$(rss_kib $SPID)
check "W link: hello before control.sock exists, then echo" drive w-echo
check "bad hellos (wrong token, magic, channel, reserved byte) are refused" drive bad
check "hello split into 40 segments" drive split-hello
check "W link: 1 MiB both ways, byte for byte" drive bulk 1048576
check "W link: half-close from the deployer" drive half-close
check "D links: parked, paired with each weavelet dial in order" drive d-pair
check "D link: 1 MiB both ways" drive d-bulk
check "24 idle unauthenticated connections do not lock the deployer out" drive flood
check "health: --health follows control.sock, the link and pushed status" \
    drive health env WEAVER_SHIM_DIR="$D1" "$SHIM" --health
check "unauthenticated connection dropped after 5 s" drive timeout
rss1=$(rss_kib $SPID) hwm1=$(hwm_kib $SPID)
check "the shim is still running" kill -0 $SPID
kill -TERM $SPID
wait_exit $SPID 5
check "bridge shim exits 143 on SIGTERM (got $rc)" test "$rc" = 143
check "no warnings beyond the rejected hellos" \
    sh -c "! grep -v 'rejected connection' '$WD_TMP/b1.log' | grep -q 'weaver-docker-shim: \(warn\|error\)'"
size=$(stat -c %s "$SHIM")
diag "shim rss=${hwm1}KiB size=${size}B (outside a container: ${rss0} KiB at start, ${rss1} KiB after 2 MiB relayed, peak ${hwm1} KiB)"
check "binary <= 200 KiB ($size B)" test "$size" -le 204800
check "RSS <= 1 MiB (${hwm1} KiB peak)" test "${hwm1:-99999}" -le 1024

# ---- pipe releases (weaver v0.20-v0.22): WEAVER_SHIM_PIPES --------------------------------------
# The "weavelet" checks what a pipe weavelet is given (fds 3 and 4 named in its environment, no
# WEAVER_SHIM_PIPES), then echoes fd 3 to fd 4 until EOF: the link's end must reach it.
PORT=$(free_port)
WEAVER_SHIM_TOKEN=$TOKEN WEAVER_SHIM_PORT=$PORT WEAVER_SHIM_DIR=$WD_TMP/p1 WEAVER_SHIM_PIPES=1 \
    WEAVER_SHIM_ORPHAN_SECS=0 "$SHIM" sh -c '[ "$ENVELOPE_TO_WEAVELET_FD" = 3 ] &&
        [ "$WEAVELET_TO_ENVELOPE_FD" = 4 ] && [ -z "${WEAVER_SHIM_PIPES+x}" ] || exit 3
        exec cat <&3 >&4' 2>"$WD_TMP/p1.log" &
SPID=$!
on_cleanup "kill -KILL $SPID"
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
check "pipes: the W link reaches the weavelet's fds 3 and 4; a second W link is refused" \
    drive pipes
wait_exit $SPID 5
check "pipes: the link's end is the weavelet's EOF: it exits 0 (got $rc)" test "$rc" = 0
WEAVER_SHIM_PIPES=1 "$SHIM" true 2>"$WD_TMP/p2.log"
rc=$?
check "WEAVER_SHIM_PIPES without a token exits 125 (got $rc)" \
    sh -c "[ $rc = 125 ] && grep -q 'WEAVER_SHIM_PIPES needs WEAVER_SHIM_TOKEN' '$WD_TMP/p2.log'"
WEAVER_SHIM_TOKEN=$TOKEN WEAVER_SHIM_PIPES=yes "$SHIM" true 2>/dev/null
check "WEAVER_SHIM_PIPES=yes exits 125" test $? -eq 125

# ---- orphan rule -----------------------------------------------------------------------------
PORT=$(free_port)
D2=$WD_TMP/b2
WEAVER_SHIM_TOKEN=$TOKEN WEAVER_SHIM_PORT=$PORT WEAVER_SHIM_DIR=$D2 WEAVER_SHIM_ORPHAN_SECS=2 \
    "$SHIM" -- "$PEER" "$D2" --no-dial --delay 4000 2>"$WD_TMP/b2.log" &
SPID=$!
on_cleanup "kill -KILL $SPID"
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
sleep 2.5
check "no orphan stop before a link was ever authenticated" kill -0 $SPID
check "data sent with the hello waits for control.sock (then the link closes)" drive early-data
t0=$(now_ms)
wait_exit $SPID 8
dt=$(($(now_ms) - t0))
check "orphaned shim stops its weavelet after ORPHAN_SECS=2 (exit $rc after $dt ms)" \
    test "$rc" = 143 -a "$dt" -ge 1800 -a "$dt" -le 4500

PORT=$(free_port)
D3=$WD_TMP/b3
WEAVER_SHIM_TOKEN=$TOKEN WEAVER_SHIM_PORT=$PORT WEAVER_SHIM_DIR=$D3 WEAVER_SHIM_ORPHAN_SECS=1 \
    "$SHIM" -- "$PEER" "$D3" --no-dial --ignore-term --delay 0 2>"$WD_TMP/b3.log" &
SPID=$!
on_cleanup "kill -KILL $SPID"
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
t0=$(now_ms)
drive link-close
wait_exit $SPID 12
dt=$(($(now_ms) - t0))
check "a weavelet ignoring SIGTERM is killed 5 s later (exit $rc after $dt ms)" \
    test "$rc" = 137 -a "$dt" -ge 5500 -a "$dt" -le 9000

# ---- inside a container ----------------------------------------------------------------------
if ! engine_up; then
    skip_or_fail "container tests: no engine answers"
    finish
fi
LBL="org.weaver-docker.test=$WD_TEST_RUN"
IMG="weaver-docker-shim-test:$WD_TEST_RUN"
mkdir -p "$WD_TMP/root/tmp"
chmod 1777 "$WD_TMP/root/tmp" # the engine copies the image's /tmp mode onto the tmpfs
cp "$SHIM" "$WD_TMP/root/shim"
cp "$PEER" "$WD_TMP/root/peer"
tar -C "$WD_TMP/root" --owner=0 --group=0 -cf "$WD_TMP/root.tar" .
check "FROM-scratch image imported" quiet docker import -c "LABEL $LBL" "$WD_TMP/root.tar" "$IMG"
NET=wd-shim-$WD_TEST_RUN
check "user network created" quiet docker network create --label "$LBL" "$NET"
HARD=(--label "$LBL" --user 65532:65532 --read-only --tmpfs /tmp --cap-drop ALL
    --security-opt no-new-privileges --network "$NET")

docker run --rm "${HARD[@]}" "$IMG" /shim -- /peer /tmp/weaver --exit 42 2>/dev/null
check "container exit code is the weavelet's (42)" test $? -eq 42
docker run --rm "${HARD[@]}" "$IMG" /shim /missing 2>/dev/null
check "container: exec failure gives 127" test $? -eq 127

C=wd-shim-$WD_TEST_RUN-1
docker run -d --name "$C" "${HARD[@]}" -e WEAVER_SHIM_TOKEN="$TOKEN" -e WEAVER_SHIM_ORPHAN_SECS=0 \
    -e WEAVER_SHIM_LOG=info "$IMG" /shim -- /peer /tmp/weaver --orphans 3 >/dev/null
IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$C")
HPID=$(docker inspect -f '{{.State.Pid}}' "$C")
check "container has an address on the user network ($IP)" test -n "$IP"
check "the shim is PID 1 in its namespace" grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$HPID/status"
check "the shim runs as uid 65532" grep -Eq '^Uid:[[:space:]]+65532[[:space:]]' "/proc/$HPID/status"
wait_for python3 -c "import socket; socket.create_connection(('$IP', 7071))"
cdrive() { $DRIVE "$IP" 7071 "$TOKEN" "$@"; }
check "container: wrong tokens refused" cdrive bad
check "container: W link echo from the host" cdrive w-echo
check "container: 1 MiB through W" cdrive bulk 1048576
check "container: D links paired" cdrive d-pair
check "container: 1 MiB through D" cdrive d-bulk
check "container: health via docker exec /shim --health" \
    cdrive health docker exec "$C" /shim --health
sleep 0.5
procs=$(docker top "$C" -eo pid,stat,comm | awk 'NR > 1 {print $2}' | tr '\n' ' ')
check "container: orphaned grandchildren reaped (process states: $procs)" \
    test "$(echo $procs | wc -w)" -eq 2 -a -z "$(echo "$procs" | tr -d 'SRI +ls ')"
crss=$(rss_kib "$HPID") chwm=$(hwm_kib "$HPID")
diag "shim rss=${chwm}KiB size=${size}B (PID 1 in a container: ${crss} KiB after 2 MiB relayed, peak ${chwm} KiB)"
check "RSS in a container <= 1 MiB (${chwm} KiB peak)" test "${chwm:-99999}" -le 1024
t0=$(now_ms)
docker stop -t 10 "$C" >/dev/null
dt=$(($(now_ms) - t0))
ec=$(docker inspect -f '{{.State.ExitCode}}' "$C")
check "docker stop: graceful exit $ec in $dt ms (143, well before the 10 s kill)" \
    test "$ec" = 143 -a "$dt" -lt 5000
check "the container logs show the link" sh -c "docker logs '$C' 2>&1 | grep -q 'authenticated'"
docker rm -f "$C" >/dev/null
finish
