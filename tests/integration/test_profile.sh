#!/bin/bash
# `weaver-docker profile` (issue 11): GetProfile from every replica of a running app, merged
# into one pprof file. A CPU profile taken while Main spins in burnCPU: `go tool pprof -top`
# reads the file and its top function is main.burnCPU; a heap profile after Main hoarded 48 MiB
# in hoardMemory: its top function by in-use space is main.hoardMemory, and samples of every
# replica are in it (label "replica"). Containers, then processes. Bad input: one line.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
GO=$(command -v go || echo /usr/local/go/bin/go)
[ -x "$GO" ] || { not_ok "go is installed (go tool pprof reads the profiles)"; finish; }
export XDG_STATE_HOME=$WD_TMP/state
APP=prof-$WD_TEST_RUN
cat >"$WD_TMP/w.toml" <<TOML
[serviceweaver]
name = "$APP"
binary = "$APPS/shop"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
TOML
on_cleanup "'$WD_BIN' down $APP"
# top FILE [pprof flags]: the function of the first row of `go tool pprof -top`
top() {
    local f=$1
    shift
    "$GO" tool pprof -top "$@" "$f" 2>/dev/null | awk '/^ *flat/ {getline; print $NF; exit}'
}

run_profile() { # RUNTIME
    local rt=$1
    "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/w.toml" >"$WD_TMP/up.out" 2>&1 ||
        { not_ok "$rt: up -d"; cat "$WD_TMP/up.out"; return; }
    local port
    port=$(sed -n 's/.*listener shop at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up.out")
    curl -fsS --max-time 30 "http://127.0.0.1:$port/spin?ms=8000" >/dev/null &
    local spin=$!
    sleep 1
    check "$rt: profile --type cpu --duration 3s" \
        "$WD_BIN" profile --type cpu --duration 3s -o "$WD_TMP/cpu.$rt.pb.gz" "$APP"
    wait "$spin"
    check "$rt: go tool pprof reads the merged CPU profile" \
        bash -c "'$GO' tool pprof -top '$WD_TMP/cpu.$rt.pb.gz' >'$WD_TMP/cpu.$rt.top' 2>&1"
    local t
    t=$(top "$WD_TMP/cpu.$rt.pb.gz")
    diag "$rt: CPU top function: $t"
    check "$rt: ... its top function is the app's hot one (main.burnCPU)" [ "$t" = main.burnCPU ]
    check "$rt: ... 3 s of samples (Duration: 3s)" grep -q 'Duration: 3' "$WD_TMP/cpu.$rt.top"
    curl -fsS --max-time 30 "http://127.0.0.1:$port/hoard?mb=48" >/dev/null
    check "$rt: profile --type heap" "$WD_BIN" profile --type heap -o "$WD_TMP/heap.$rt.pb.gz" "$APP"
    t=$(top "$WD_TMP/heap.$rt.pb.gz" -sample_index=inuse_space)
    diag "$rt: heap top function: $t"
    check "$rt: ... its top function by in-use space is main.hoardMemory" [ "$t" = main.hoardMemory ]
    "$GO" tool pprof -tags "$WD_TMP/heap.$rt.pb.gz" >"$WD_TMP/heap.$rt.tags" 2>&1
    local n
    n=$(grep -cE '^ +[0-9.]+[kMG]?B? +\([ 0-9.]+%\): (shop|weaver)\.' "$WD_TMP/heap.$rt.tags")
    diag "$rt: replicas in the heap profile: $n"
    check "$rt: ... with samples of all 4 replicas (label replica)" [ "$n" = 4 ]
    check "$rt: down" "$WD_BIN" down "$APP"
}

run_profile docker
run_profile process

# bad input
"$WD_BIN" profile -o "$WD_TMP/x.pb.gz" "$APP" >"$WD_TMP/b1" 2>&1; rc=$?
check "profile of an app that is not running: exit != 0, one line, no file" \
    bash -c "[ $rc != 0 ] && [ \$(wc -l <'$WD_TMP/b1') = 1 ] && grep -q 'is not running' '$WD_TMP/b1' && [ ! -e '$WD_TMP/x.pb.gz' ]"
"$WD_BIN" up -d --runtime=process "$WD_TMP/w.toml" >/dev/null 2>&1
for bad in "--type=bogus" "--duration=0" "--duration=11m" "--duration=fast" "-o /nonexistent/dir/p.pb.gz"; do
    # shellcheck disable=SC2086
    "$WD_BIN" profile $bad "$APP" >"$WD_TMP/b2" 2>&1; rc=$?
    check "profile $bad: exit != 0, one line" bash -c "[ $rc != 0 ] && [ \$(wc -l <'$WD_TMP/b2') = 1 ]"
done
check "down" "$WD_BIN" down "$APP"
finish
