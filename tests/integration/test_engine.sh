#!/bin/bash
# Engine client (issue 4) against the real engine: images (static, dynamic, load and build),
# networks, containers reached by alias and by published port, logs demultiplexed, attach,
# events, exit codes, bad inputs, cleanup. The same suite runs against Podman from
# test_engine_podman.sh (it sources this file with WD_ENGINE_SUITE_ONLY=1).
#
# A small driver (tests/drivers/engine_driver.c) is compiled against $BUILD/libwd.a, where BUILD
# is $WD_BUILD_DIR, else the directory of $WD_BIN, else build/default. WD_DRIVER_CFLAGS adds
# compiler flags ("-fsanitize=address,undefined" against an ASan build).
if ! declare -F ok >/dev/null; then
    . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

LBL="org.weaver-docker.test=$WD_TEST_RUN"

# build_tools: the driver and the payloads (static echo with musl, dynamic echo with gcc)
build_tools() {
    local b=${WD_BUILD_DIR:-}
    if [ -z "$b" ]; then
        if [ -n "${WD_BIN:-}" ] && [ -f "$(dirname "$WD_BIN")/libwd.a" ]; then
            b=$(dirname "$WD_BIN")
        else
            b=$WD_ROOT/build/default
        fi
    fi
    case "$b" in /*) ;; *) b=$WD_ROOT/$b ;; esac
    if [ ! -f "$b/libwd.a" ]; then
        not_ok "libwd.a found in $b (run make first)"
        exit 1
    fi
    chmod 755 "$WD_TMP"
    D=$WD_TMP/engine_driver
    # shellcheck disable=SC2046
    # WD_DRIVER_CFLAGS: e.g. "-fsanitize=address,undefined" with an ASan libwd.a
    if ! gcc -std=gnu11 -D_GNU_SOURCE -I"$WD_ROOT" $(pkg-config --cflags libcjson libcurl) -O1 -g \
        ${WD_DRIVER_CFLAGS:-} \
        -o "$D" "$WD_ROOT/tests/drivers/engine_driver.c" "$b/libwd.a" \
        $(pkg-config --libs libcurl libcjson libarchive libcrypto libprotobuf-c yaml-0.1 2>/dev/null) \
        -lpthread 2>"$WD_TMP/cc.log"; then
        cat "$WD_TMP/cc.log" >&2
        not_ok "build engine driver"
        exit 1
    fi
    ECHO=$WD_TMP/echo
    if command -v musl-gcc >/dev/null; then
        musl-gcc -static -Os -pthread -o "$ECHO" "$WD_ROOT/tests/drivers/echo.c"
    else
        gcc -static -Os -pthread -o "$ECHO" "$WD_ROOT/tests/drivers/echo.c" 2>/dev/null
    fi
    ECHO_DYN=$WD_TMP/echodyn
    gcc -O2 -pthread -o "$ECHO_DYN" "$WD_ROOT/tests/drivers/echo.c"
    if [ -x "${WD_SHIM:-}" ] && ! readelf -l "$WD_SHIM" | grep -q INTERP; then SHIM=$WD_SHIM; else SHIM=$ECHO; fi
    chmod 755 "$D" "$ECHO" "$ECHO_DYN"
}

# field KEY <<<"k=v lines"
field() { sed -n "s|^$1=||p" | head -1; }

# expect_fail NAME ERRNAME GREP CMD...: CMD must fail with "error: ERRNAME: ...GREP..."
expect_fail() {
    local n=$1 en=$2 pat=$3 out
    shift 3
    if out=$("$@" 2>&1); then
        not_ok "$n (succeeded: $out)"
        return
    fi
    if grep -q "^error: $en: " <<<"$out" && grep -qi -- "$pat" <<<"$out"; then
        ok "$n"
        diag "  $(tr '\n' ' ' <<<"$out" | cut -c1-300)"
    else
        not_ok "$n (got: $out)"
    fi
}

# engine_suite NAME: everything that needs a working engine, on $DOCKER_HOST (or the default)
engine_suite() {
    local E=$1 out id p srv cli dyn net evpid port
    local pre="wdt-${WD_TEST_RUN}"
    export WD_HOST=${DOCKER_HOST:-}
    on_cleanup "WD_HOST='${WD_HOST}' '$D' cleanup '$LBL'"

    # ---- connection ----
    if out=$("$D" ping 2>&1); then
        ok "$E: connect and negotiate ($(tr '\n' ' ' <<<"$out"))"
    else
        not_ok "$E: connect ($out)"
        return
    fi
    PODMAN=$(field podman <<<"$out")

    # ---- images ----
    local img1 img1b dimg bimg size bin
    out=$("$D" image --app echo-$WD_TEST_RUN --binary "$ECHO" --shim "$SHIM" 2>&1)
    img1=$(field tag <<<"$out")
    if [ -n "$img1" ] && [ "$(field reused <<<"$out")" = 0 ]; then
        ok "$E: image from a static binary loaded ($img1, $(field ms <<<"$out") ms)"
    else
        not_ok "$E: image from a static binary ($out)"
    fi
    size=$(field size <<<"$out")
    bin=$(($(stat -c %s "$ECHO") + $(stat -c %s "$SHIM")))
    if [ -n "$size" ] && [ $((size - bin)) -le 1048576 ]; then
        ok "$E: image overhead $((size - bin)) bytes <= 1 MiB"
    else
        not_ok "$E: image overhead (size=$size, files=$bin)"
    fi
    out=$("$D" image --app echo-$WD_TEST_RUN --binary "$ECHO" --shim "$SHIM" 2>&1)
    img1b=$(field tag <<<"$out")
    if [ "$img1b" = "$img1" ] && [ "$(field reused <<<"$out")" = 1 ]; then
        ok "$E: unchanged image is not uploaded again ($(field ms <<<"$out") ms)"
    else
        not_ok "$E: unchanged image reused ($out)"
    fi
    out=$("$D" image --app echodyn-$WD_TEST_RUN --binary "$ECHO_DYN" --shim "$SHIM" --name echodyn 2>&1)
    dimg=$(field tag <<<"$out")
    if [ -n "$dimg" ] && [ "$(field libs <<<"$out")" -ge 2 ]; then
        ok "$E: image from a dynamic binary with interpreter and libraries ($(field libs <<<"$out") libs)"
    else
        not_ok "$E: image from a dynamic binary ($out)"
    fi
    out=$("$D" image --app echobuild-$WD_TEST_RUN --binary "$ECHO" --shim "$SHIM" --method build 2>&1)
    bimg=$(field tag <<<"$out")
    if [ -n "$bimg" ] && [ "$(field reused <<<"$out")" = 0 ]; then
        ok "$E: image through POST /build ($(field ms <<<"$out") ms)"
    else
        not_ok "$E: image through POST /build ($out)"
    fi

    # ---- network ----
    net=$pre-net
    if out=$("$D" net-create "$net" 2>&1) && "$D" net-inspect "$net" | grep -q "^label.$LBL\$"; then
        ok "$E: network created with our labels"
    else
        not_ok "$E: network create ($out)"
    fi
    expect_fail "$E: duplicate network name is EEXIST" EEXIST "exist" "$D" net-create "$net"

    # ---- containers: server (static), events, client by alias, host by port ----
    srv=$pre-srv
    "$D" events "org.weaver-docker.replica=$srv" die 120 >"$WD_TMP/events.$E" 2>&1 &
    evpid=$!
    wait_for grep -q '^ready' "$WD_TMP/events.$E" || not_ok "$E: events stream subscribed"
    local health=(--health /app/echo --health connect --health 127.0.0.1 --health 7000 --health ping)
    if out=$("$D" create "$srv" "$img1" --net "$net" --alias alpha --port 7000 --hardened \
        --user 65532:65532 --label "org.weaver-docker.replica=$srv" --entrypoint "/app/echo" \
        "${health[@]}" --start -- serve 7000 2>&1); then
        ok "$E: hardened container created and started (read-only, cap-drop ALL, no-new-privileges, tmpfs, ulimits, healthcheck)"
    else
        not_ok "$E: create+start server ($out)"
    fi
    out=$("$D" inspect "$srv" "$net" 2>&1)
    port=$(sed -n 's|^port.7000/tcp=127.0.0.1:||p' <<<"$out" | head -1)
    if [ "$(field status <<<"$out")" = running ] && [ -n "$(field ip <<<"$out")" ] && [ -n "$port" ]; then
        ok "$E: inspect: running, ip $(field ip <<<"$out") on $net, published 127.0.0.1:$port"
    else
        not_ok "$E: inspect server ($out)"
    fi
    if [ "$PODMAN" = 0 ]; then
        if wait_for bash -c "'$D' inspect '$srv' | grep -q '^health=healthy'"; then
            ok "$E: healthcheck reports healthy"
        else
            not_ok "$E: healthcheck healthy ($("$D" inspect "$srv" | grep health))"
        fi
    else
        skip "$E: healthcheck status (Podman 4.3 runs healthchecks from systemd timers, absent here)"
    fi

    dyn=$pre-dyn
    if out=$("$D" create "$dyn" "$dimg" --net "$net" --alias beta --hardened --entrypoint /app/echodyn \
        --start -- serve 7001 2>&1) && sleep 0.3 &&
        [ "$("$D" inspect "$dyn" | field status)" = running ]; then
        ok "$E: dynamic binary runs in its FROM-scratch image"
    else
        not_ok "$E: dynamic binary runs ($out $("$D" logs "$dyn" 2>&1))"
    fi

    cli=$pre-cli
    "$D" create "$cli" "$img1" --net "$net" --entrypoint "/app/echo" --start -- \
        connect alpha 7000 hello-alpha >/dev/null 2>&1
    out=$("$D" wait "$cli" 2>&1)
    if [ "$(field exit <<<"$out")" = 0 ] && "$D" logs "$cli" | grep -q '^stdout: reply: hello-alpha'; then
        ok "$E: another container reaches the server by alias"
    else
        not_ok "$E: reach by alias ($out $("$D" logs "$cli" 2>&1))"
    fi
    "$D" create "$cli-b" "$img1" --net "$net" --entrypoint "/app/echo" --start -- \
        connect beta 7001 hello-beta >/dev/null 2>&1
    out=$("$D" wait "$cli-b" 2>&1)
    if [ "$(field exit <<<"$out")" = 0 ] && "$D" logs "$cli-b" | grep -q '^stdout: reply: hello-beta'; then
        ok "$E: the dynamic server answers by alias"
    else
        not_ok "$E: reach dynamic server by alias ($out $("$D" logs "$cli-b" 2>&1))"
    fi

    out=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; printf 'from-host\nerr to-stderr\nexit 3\n' >&3; cat <&3" 2>&1)
    if grep -q '^from-host' <<<"$out" && grep -q '^bye 3' <<<"$out"; then
        ok "$E: host reaches the server on its published port"
    else
        not_ok "$E: host reaches published port $port ($out)"
    fi
    out=$("$D" wait "$srv" 2>&1)
    if [ "$(field exit <<<"$out")" = 3 ] && [ "$("$D" inspect "$srv" | field exit)" = 3 ]; then
        ok "$E: wait and inspect report exit code 3"
    else
        not_ok "$E: exit code 3 ($out)"
    fi
    out=$("$D" logs "$srv" 2>&1)
    if grep -q '^stdout: hello stdout' <<<"$out" && grep -q '^stdout: exiting with 3' <<<"$out" &&
        grep -q '^stderr: hello stderr' <<<"$out" && grep -q '^stderr: to-stderr' <<<"$out" &&
        ! grep -q '^stdout: .*stderr' <<<"$out"; then
        ok "$E: logs demultiplexed into stdout and stderr"
    else
        not_ok "$E: logs demultiplexed ($out)"
    fi
    wait "$evpid"
    out=$(cat "$WD_TMP/events.$E")
    if grep -q "action=start name=$srv" <<<"$out" && grep -Eq "action=die(d)? name=$srv exit=3" <<<"$out"; then
        ok "$E: events stream delivered start and die with exit code 3"
    else
        not_ok "$E: events start/die ($out)"
    fi

    # ---- attach before start, TTY form, kill, stop ----
    "$D" create "$pre-att" "$img1" --entrypoint "/app/echo" >/dev/null 2>&1
    "$D" attach "$pre-att" >"$WD_TMP/attach.$E" 2>&1 &
    p=$!
    sleep 0.5
    "$D" start "$pre-att" >/dev/null 2>&1
    wait "$p"
    if grep -q '^stderr: usage: echo' "$WD_TMP/attach.$E" && [ "$("$D" wait "$pre-att" | field exit)" = 64 ]; then
        ok "$E: attach before start captures the output of a fast exit (exit 64)"
    else
        not_ok "$E: attach ($(cat "$WD_TMP/attach.$E"))"
    fi
    "$D" create "$pre-tty" "$img1" --tty --entrypoint "/app/echo" --start >/dev/null 2>&1
    "$D" wait "$pre-tty" >/dev/null 2>&1
    out=$("$D" logs "$pre-tty" 2>&1)
    if grep -q '^stdout: usage: echo' <<<"$out" && [ "$("$D" inspect "$pre-tty" | field tty)" = 1 ]; then
        ok "$E: TTY container logs read as one raw stream"
    else
        not_ok "$E: TTY logs ($out)"
    fi
    "$D" create "$pre-slp" "$img1" --entrypoint "/app/echo" --start -- sleep >/dev/null 2>&1
    if "$D" kill "$pre-slp" SIGTERM && [ "$("$D" wait "$pre-slp" | field exit)" = 0 ]; then
        ok "$E: kill with SIGTERM"
    else
        not_ok "$E: kill with SIGTERM"
    fi
    "$D" start "$pre-slp" >/dev/null 2>&1
    if "$D" stop "$pre-slp" 5 && [ "$("$D" inspect "$pre-slp" | field status)" = exited ]; then
        ok "$E: stop with timeout"
    else
        not_ok "$E: stop with timeout"
    fi
    # connect with an alias (a second network attached before start), then reach it by alias
    "$D" create "$pre-gam" "$img1" --entrypoint /app/echo -- serve 7002 >/dev/null 2>&1
    if "$D" connect "$pre-gam" "$net" gamma && "$D" start "$pre-gam" &&
        "$D" create "$cli-g" "$img1" --net "$net" --entrypoint /app/echo --start -- \
            connect gamma 7002 hello-gamma >/dev/null 2>&1 &&
        [ "$("$D" wait "$cli-g" | field exit)" = 0 ] &&
        "$D" logs "$cli-g" | grep -q '^stdout: reply: hello-gamma'; then
        ok "$E: network connect with an alias"
    else
        not_ok "$E: network connect with an alias ($("$D" logs "$cli-g" 2>&1))"
    fi
    # create+start in parallel on the bounded pool, every job reported
    out=$(WD_BENCH_ENTRYPOINT=/app/echo "$D" bench-par 6 "$img1" "$net" "$pre-par" 3 2>&1)
    if [ $? -eq 0 ] && [ "$("$D" ps "$LBL" org.weaver-docker.role=bench | grep -c ' running$')" = 6 ]; then
        ok "$E: 6 containers created and started in parallel on 3 threads ($(sed -n 's/.*seconds=//p' <<<"$out") s)"
    else
        not_ok "$E: parallel create+start ($out)"
    fi
    out=$("$D" ps "$LBL" "org.weaver-docker.app=engine-test" 2>&1)
    if [ "$(field count <<<"$out")" -ge 6 ]; then
        ok "$E: list by label filter ($(field count <<<"$out") containers)"
    else
        not_ok "$E: list by label ($out)"
    fi

    # ---- bad inputs needing the engine ----
    expect_fail "$E: name conflict is EEXIST" EEXIST "already in use" \
        "$D" create "$srv" "$img1" --net "$net"
    expect_fail "$E: missing image is ENOENT" ENOENT "image" \
        "$D" create "$pre-noimg" "weaver-docker/nope-$WD_TEST_RUN:0" --net "$net"
    local busy=$((20000 + RANDOM % 20000)) hpid
    "$ECHO" serve "$busy" >/dev/null 2>&1 &
    hpid=$!
    on_cleanup "kill $hpid"
    sleep 0.3
    expect_fail "$E: host port already taken is EADDRINUSE" EADDRINUSE "in use\|allocated\|listen" \
        "$D" create "$pre-busy" "$img1" --net "$net" --port "7000:$busy:127.0.0.1" \
        --entrypoint "/app/echo" --start -- serve 7000
    kill "$hpid" 2>/dev/null

    # engine stopped mid-call: a proxy in front of the engine, killed during a blocking wait
    local sock=${WD_HOST#unix://}
    [ -n "$sock" ] || sock=$("$D" ping | field socket)
    "$D" create "$pre-wait" "$img1" --entrypoint "/app/echo" --start -- sleep >/dev/null 2>&1
    "$D" proxy "$WD_TMP/proxy.sock" "$sock" >"$WD_TMP/proxy.$E.log" 2>&1 &
    p=$!
    on_cleanup "kill $p"
    wait_for test -S "$WD_TMP/proxy.sock"
    WD_HOST=unix://$WD_TMP/proxy.sock "$D" wait "$pre-wait" >"$WD_TMP/wait.$E" 2>&1 &
    local wpid=$!
    # kill the proxy only once the wait call itself is through it (the client may start late on
    # a loaded machine, and Podman closes the connection of the version probe before it)
    wait_for grep -q '^request POST .*/wait' "$WD_TMP/proxy.$E.log" || sleep 1
    sleep 0.3
    kill "$p"
    wait "$p" 2>/dev/null
    wait "$wpid"
    out=$(cat "$WD_TMP/wait.$E")
    if grep -q '^error: ECONNRESET: .*stopped or restarted mid-call' <<<"$out"; then
        ok "$E: engine gone mid-call is ECONNRESET"
        diag "  $out"
    else
        not_ok "$E: engine gone mid-call ($out)"
    fi

    # ---- cleanup ----
    out=$("$D" cleanup "$LBL" 2>&1)
    if [ $? -eq 0 ] && [ "$(field containers <<<"$out")" -ge 12 ]; then
        ok "$E: cleanup by label ($(tr '\n' ' ' <<<"$out"))"
    else
        not_ok "$E: cleanup ($out)"
    fi
    if [ "$("$D" ps "$LBL" | field count)" = 0 ] &&
        [ -z "$(docker network ls -q --filter "label=$LBL")" ] &&
        [ -z "$(docker images -q --filter "label=$LBL")" ]; then
        ok "$E: the engine holds none of our labeled containers, networks or images"
    else
        not_ok "$E: engine clean ($(docker ps -a --filter "label=$LBL"; docker network ls --filter "label=$LBL"; docker images --filter "label=$LBL"))"
    fi
}

# no_engine_suite: inputs that need no engine at all
no_engine_suite() {
    local g=$WD_TMP/garbage.sock gp
    expect_fail "socket path that does not exist" ENOENT "does not exist.*start the engine" \
        env WD_HOST="unix://$WD_TMP/nope.sock" "$D" ping
    expect_fail "tcp:// host is refused" EINVAL "only unix://" env WD_HOST=tcp://127.0.0.1:2375 "$D" ping
    expect_fail "socket path over 107 bytes" ENAMETOOLONG "at most 107" \
        env WD_HOST="unix://$WD_TMP/$(printf 'x%.0s' $(seq 1 120)).sock" "$D" ping
    "$D" serve-garbage "$g" >/dev/null 2>&1 &
    gp=$!
    on_cleanup "kill $gp"
    wait_for test -S "$g"
    expect_fail "non-engine socket is EPROTO" EPROTO "not a Docker or Podman engine" \
        env WD_HOST="unix://$g" "$D" ping
    chmod 000 "$g"
    if command -v setpriv >/dev/null; then
        expect_fail "socket we may not open is EACCES (mode 000, uid 65534)" EACCES "docker' group\|sudo" \
            setpriv --reuid=65534 --regid=65534 --clear-groups env WD_HOST="unix://$g" "$D" ping
    else
        skip "EACCES test: setpriv missing"
    fi
    kill "$gp" 2>/dev/null
    local arm=$WD_TMP/armbin
    cp "$ECHO" "$arm"
    printf '\267\000' | dd of="$arm" bs=1 seek=18 conv=notrunc status=none
    expect_fail "binary for another CPU is refused before building" ENOEXEC "arm64" \
        "$D" image --app arm-$WD_TEST_RUN --binary "$arm"
    # a dynamic binary whose library is missing on the host
    printf 'int wd_gone(void){return 1;}\n' >"$WD_TMP/gone.c"
    printf 'int wd_gone(void);\nint main(void){return wd_gone();}\n' >"$WD_TMP/usegone.c"
    if gcc -shared -fPIC -o "$WD_TMP/libwdgone.so" "$WD_TMP/gone.c" &&
        gcc -o "$WD_TMP/usegone" "$WD_TMP/usegone.c" -L"$WD_TMP" -lwdgone; then
        rm -f "$WD_TMP/libwdgone.so"
        expect_fail "missing shared library names CGO_ENABLED=0" ELIBACC "CGO_ENABLED=0" \
            "$D" image --app gone-$WD_TEST_RUN --binary "$WD_TMP/usegone"
    fi
}

if [ -z "${WD_ENGINE_SUITE_ONLY:-}" ]; then
    build_tools
    no_engine_suite
    require_engine
    engine_suite docker
    finish
fi
