#!/bin/bash
# Service Weaver releases (issue 14): the matrix app (tests/apps/matrix*) built with each
# release's own `weaver generate`. v0.24.6, v0.24.3, v0.23.2 (control sockets) and v0.22.0,
# v0.21.2, v0.20.0 (two pipes) run under `up` and `up --runtime=process`: inspect names the
# protocol generation, an answer crosses two groups, weaver's logs arrive formatted at every
# level, a killed Greeter replica is replaced and answers again, down leaves nothing. An app at
# v0.22.0 is upgraded to v0.24.6 by `up` with no failed request. `compose`
# refuses a pipe release with one line; v0.19.0 is refused with one line, exit 1, and nothing
# left behind.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
export WEAVER_DOCKER_SHIM=$WD_SHIM
lab="label=org.weaver-docker.test=$WD_TEST_RUN"
nothing_left() {
    [ -z "$(docker ps -aq --filter "$lab")" ] && [ -z "$(docker network ls -q --filter "$lab")" ]
}
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
toml() { # NAME APP PORT
    printf '[serviceweaver]\nname = "%s"\nbinary = "%s"\n[docker]\nlisteners.matrix = {address = "localhost:%s"}\n["example.com/matrix/Greeter"]\nGreeting = "Hello"\n' \
        "$1" "$APPS/$2" "$3" >"$WD_TMP/$1.toml"
}

run_version() { # APP MODULE GENERATION-WORDS RUNTIME
    local app=$1 mod=$2 gen=$3 rt=$4 name port
    name=m$(echo "$mod" | tr -dc 0-9)$rt
    name=${name:0:20}
    port=$(freeport)
    toml "$name" "$app" "$port"
    local t="$mod $rt"
    if ! "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/$name.toml" >"$WD_TMP/$name.up" 2>&1; then
        not_ok "$t: up -d: $(tail -3 "$WD_TMP/$name.up" | tr '\n' ' ')"
        "$WD_BIN" logs --system "$name" 2>&1 | tail -25 | sed 's/^/# /'
        "$WD_BIN" down "$name" >/dev/null 2>&1
        return
    fi
    on_cleanup "'$WD_BIN' down '$name' >/dev/null 2>&1"
    local get="curl -fsS --max-time 5 http://127.0.0.1:$port"
    check "$t: an answer through the listener crosses groups (Main -> Greeter)" \
        test "$($get/hello?name=v)" = "Hello, v!"
    check "$t: the app reports weaver $mod" test "$($get/version)" = "weaver=$mod"
    check "$t: the Greeter logs 4 entries" test "$($get/logs)" = "logged 4 entries"
    has_logs() {
        "$WD_BIN" logs "$name" >"$WD_TMP/$name.logs" 2>&1
        grep -q '^E[0-9]\{4\} .*matrix.Greeter .*│ error entry n="4" quoted="a \\"b\\""' "$WD_TMP/$name.logs" &&
            grep -q '^W[0-9]\{4\} .*│ warn entry n="3"' "$WD_TMP/$name.logs"
    }
    check "$t: weaver's logs arrive formatted (levels, component, attributes)" wait_for has_logs
    # kill the Greeter replica: it is replaced and Main reaches the new one
    local before after
    before=$($get/pid | sed 's/.*greeter=//')
    if [ "$rt" = docker ]; then
        local victim
        victim=$(docker ps -q --filter "label=org.weaver-docker.app=$name" \
            --filter "label=org.weaver-docker.group=matrix.Greeter" | head -1)
        docker kill "$victim" >/dev/null 2>&1
        replaced() { [ -n "$(docker ps -q --filter "label=org.weaver-docker.app=$name" \
            --filter "label=org.weaver-docker.group=matrix.Greeter")" ] &&
            [ "$($get/hello?name=w 2>/dev/null)" = "Hello, w!" ] &&
            [ "$(docker ps -q --filter "label=org.weaver-docker.app=$name" --filter "label=org.weaver-docker.group=matrix.Greeter")" != "$victim" ]; }
    else
        kill -9 "$before" 2>/dev/null
        replaced() { after=$($get/pid 2>/dev/null | sed 's/.*greeter=//') &&
            [ -n "$after" ] && [ "$after" != "$before" ] &&
            [ "$($get/hello?name=w 2>/dev/null)" = "Hello, w!" ]; }
    fi
    check "$t: a killed Greeter replica is replaced and answers again" wait_for replaced
    "$WD_BIN" down "$name" >/dev/null 2>&1
    check "$t: down leaves nothing" wait_for nothing_left
}

# APP:MODULE:PROTOCOL (the start of inspect's protocol line)
ok_versions=(
    "matrix:v0.24.6:control sockets, deployer API v0.24.0"
    "matrix-v0243:v0.24.3:control sockets, deployer API v0.24.0"
    "matrix-v0232:v0.23.2:control sockets, deployer API v0.23.0"
    "matrix-v0220:v0.22.0:two pipes, deployer API v0.22.0"
    "matrix-v0212:v0.21.2:two pipes, deployer API v0.20.0"
    "matrix-v0200:v0.20.0:two pipes, deployer API v0.20.0"
)
for av in "${ok_versions[@]}"; do
    IFS=: read -r app mod proto <<<"$av"
    [ -x "$APPS/$app" ] || { not_ok "test app $app is built (run make apps)"; continue; }
    "$WD_BIN" inspect "$APPS/$app" >"$WD_TMP/inspect.$app" 2>&1
    check "inspect $mod: module and protocol generation ($proto)" \
        bash -c "grep -qx 'weaver module: $mod' '$WD_TMP/inspect.$app' && grep -q '^protocol:      $proto' '$WD_TMP/inspect.$app'"
    for rt in docker process; do
        run_version "$app" "$mod" "" "$rt"
    done
done

# an old app upgraded in place: v0.22.0 (pipes) rolled over to v0.24.6 (control sockets) while
# requests keep coming: none fails, and the answers move to the new release
if [ -x "$APPS/matrix-v0220" ] && [ -x "$APPS/matrix" ]; then
    ro=ro$$ port=$(freeport)
    toml "$ro" matrix-v0220 "$port"
    on_cleanup "'$WD_BIN' down '$ro' >/dev/null 2>&1"
    "$WD_BIN" up -d "$WD_TMP/$ro.toml" >"$WD_TMP/ro.up1" 2>&1
    check "upgrade: v0.22.0 is up" \
        test "$(curl -fsS --max-time 5 "http://127.0.0.1:$port/version")" = "weaver=v0.22.0"
    (while [ ! -e "$WD_TMP/ro.done" ]; do
        curl -fsS --max-time 5 "http://127.0.0.1:$port/version" 2>/dev/null || echo FAIL
        echo
        sleep 0.02
    done) >"$WD_TMP/ro.loop" &
    loop=$!
    sleep 0.5
    toml "$ro" matrix "$port"
    "$WD_BIN" up -d "$WD_TMP/$ro.toml" >"$WD_TMP/ro.up2" 2>&1
    sleep 1
    touch "$WD_TMP/ro.done"
    wait "$loop"
    n=$(grep -c weaver= "$WD_TMP/ro.loop") f=$(grep -c FAIL "$WD_TMP/ro.loop")
    check "upgrade: up of v0.24.6 rolls v0.22.0 over ($(head -1 "$WD_TMP/ro.up2"))" \
        grep -q "rolled over from deployment" "$WD_TMP/ro.up2"
    check "upgrade: $n requests during it, $f failed; the last ones answered by v0.24.6" \
        bash -c "[ $f = 0 ] && [ $n -gt 20 ] && grep -q weaver=v0.22.0 '$WD_TMP/ro.loop' &&
            [ \"\$(grep weaver= '$WD_TMP/ro.loop' | tail -1)\" = weaver=v0.24.6 ]"
    "$WD_BIN" down "$ro" >/dev/null 2>&1
    check "upgrade: down leaves nothing" wait_for nothing_left
fi

# refused: one line naming the version and what is supported, exit 1, nothing made
refused() { # APP MODULE PATTERN
    local app=$1 mod=$2
    [ -x "$APPS/$app" ] || { not_ok "test app $app is built (run make apps)"; return; }
    toml "r$$" "$app" "$(freeport)"
    "$WD_BIN" up -d "$WD_TMP/r$$.toml" >"$WD_TMP/r.out" 2>"$WD_TMP/r.err"
    local rc=$?
    if [ "$rc" = 1 ] && [ "$(wc -l <"$WD_TMP/r.err")" = 1 ] && grep -q "$3" "$WD_TMP/r.err" &&
        grep -q "supported: weaver v0.20.0-v0.24.6" "$WD_TMP/r.err" && nothing_left; then
        ok "weaver $mod refused: $(cat "$WD_TMP/r.err")"
    else
        not_ok "weaver $mod refused (exit $rc): $(head -c 400 "$WD_TMP/r.err")"
    fi
    "$WD_BIN" inspect "$APPS/$app" 2>/dev/null | grep '^protocol:' | sed "s/^/# $mod: /"
}
refused matrix-v0190 v0.19.0 "unsupported weaver version v0.19.0"

# what a pipe release cannot do is said at up, in one line: mutual TLS (its weavelets name the
# wrong component when they check a server's certificate)
if [ -x "$APPS/matrix-v0220" ]; then
    toml "t$$" matrix-v0220 "$(freeport)"
    sed -i 's/^\[docker\]$/[docker]\nmtls = true/' "$WD_TMP/t$$.toml"
    "$WD_BIN" up -d "$WD_TMP/t$$.toml" >"$WD_TMP/t.out" 2>"$WD_TMP/t.err"
    rc=$?
    if [ "$rc" = 1 ] && [ "$(wc -l <"$WD_TMP/t.err")" = 1 ] && nothing_left &&
        grep -q "mtls = true does not work with weaver v0.22.0: its weavelets name the wrong component" "$WD_TMP/t.err"; then
        ok "mtls refused for weaver v0.22.0: $(cat "$WD_TMP/t.err")"
    else
        not_ok "mtls refused for weaver v0.22.0 (exit $rc): $(head -c 400 "$WD_TMP/t.err")"
    fi
fi

# compose runs its manager and shims without us: the pipe releases are refused there, in one line
if [ -x "$APPS/matrix-v0220" ]; then
    toml "c$$" matrix-v0220 "$(freeport)"
    "$WD_BIN" compose -o "$WD_TMP/c.yml" "$WD_TMP/c$$.toml" >"$WD_TMP/c.out" 2>"$WD_TMP/c.err"
    rc=$?
    if [ "$rc" = 1 ] && [ "$(wc -l <"$WD_TMP/c.err")" = 1 ] && [ ! -e "$WD_TMP/c.yml" ] &&
        grep -q "uses weaver v0.22.0, whose weavelets talk to their deployer over two pipes: compose files need weaver v0.23.0 or later; run it with 'weaver-docker up'" "$WD_TMP/c.err"; then
        ok "compose refuses weaver v0.22.0: $(cat "$WD_TMP/c.err")"
    else
        not_ok "compose refuses weaver v0.22.0 (exit $rc): $(head -c 400 "$WD_TMP/c.err")"
    fi
fi
finish
