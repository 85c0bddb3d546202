#!/bin/bash
# `weaver-docker scale` on a running app (issue 11): Cart 1 -> 3 -> 1 and Main (the listener's
# group) 1 -> 2 -> 1 under a bounded request loop through the listener: zero failed requests;
# new replicas serve (routing and listener balancing include them), extra ones drain and go;
# `ps --json` shows the counts. Containers, then processes. Bad input: one line, exit != 0.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
export XDG_STATE_HOME=$WD_TMP/state
APP=scale-$WD_TEST_RUN
cat >"$WD_TMP/w.toml" <<TOML
[serviceweaver]
name = "$APP"
binary = "$APPS/shop"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
TOML
on_cleanup "'$WD_BIN' down $APP"

# count GROUP STATE: replicas of GROUP in that state, from ps --json
count() {
    "$WD_BIN" ps --json "$APP" | python3 -c '
import json, sys
g, st = sys.argv[1:]
print(sum(1 for d in json.load(sys.stdin) for r in d.get("replicas", [])
          if r["group"] == g and st in ("any", r["state"])))' "$1" "$2"
}
has() { [ "$(count "$1" "$2")" = "$3" ]; }

run_scale() { # RUNTIME
    local rt=$1
    "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/w.toml" >"$WD_TMP/up.out" 2>&1 ||
        { not_ok "$rt: up -d"; cat "$WD_TMP/up.out"; return; }
    local port
    port=$(sed -n 's/.*listener shop at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up.out")
    # the bounded loop: 700 requests, each through Main to Cart (/whoami names both weavelets)
    (
        ok=0 failed=0
        for i in $(seq 700); do
            if curl -fsS --max-time 10 "http://127.0.0.1:$port/whoami" >>"$WD_TMP/who.$rt" 2>>"$WD_TMP/loop.err"; then
                ok=$((ok + 1))
            else
                failed=$((failed + 1))
            fi
        done
        echo "$ok $failed" >"$WD_TMP/loop.$rt"
    ) &
    local loop=$!
    check "$rt: scale shop.Cart=3" "$WD_BIN" scale "$APP" shop.Cart=3
    check "$rt: ps --json shows 3 running Cart replicas" wait_for has shop.Cart running 3
    check "$rt: scale main=2 (the listener's group)" "$WD_BIN" scale "$APP" main=2
    check "$rt: ps --json shows 2 running Main replicas" wait_for has weaver.Main running 2
    sleep 3 # requests meanwhile reach the new replicas
    check "$rt: scale cart=1 main=1" "$WD_BIN" scale "$APP" cart=1 main=1
    check "$rt: ps --json shows 1 Cart replica once the others drained" \
        wait_for has shop.Cart any 1
    check "$rt: ... and 1 Main" has weaver.Main running 1
    wait "$loop"
    read -r ok failed <"$WD_TMP/loop.$rt"
    diag "$rt: request loop: $ok ok, $failed failed"
    check "$rt: 700 requests through scale 1->3->1 and 1->2->1: 0 failed" [ "$ok" = 700 ] && [ "$failed" = 0 ]
    local carts mains
    carts=$(sed -n 's/.*cart=\([0-9a-f-]*\)/\1/p' "$WD_TMP/who.$rt" | sort -u | wc -l)
    mains=$(sed -n 's/main=\([0-9a-f-]*\) .*/\1/p' "$WD_TMP/who.$rt" | sort -u | wc -l)
    diag "$rt: distinct Cart weavelets answering: $carts, Main: $mains"
    check "$rt: the new Cart replicas served calls (routing included them)" [ "$carts" -ge 2 ]
    check "$rt: the new Main replica served requests (the listener balanced to it)" [ "$mains" -ge 2 ]
    check "$rt: the scaled group still answers" curl -fsS --max-time 10 "http://127.0.0.1:$port/whoami"
    check "$rt: down" "$WD_BIN" down "$APP"
}

run_scale docker
check "docker: no container of the app is left" bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP)\" ]"
run_scale process

# bad input
"$WD_BIN" scale "$APP" shop.Cart=2 >"$WD_TMP/b1" 2>&1; rc=$?
check "scale of an app that is not running: exit != 0, one line" \
    bash -c "[ $rc != 0 ] && [ \$(wc -l <'$WD_TMP/b1') = 1 ] && grep -q 'is not running' '$WD_TMP/b1'"
"$WD_BIN" up -d --runtime=process "$WD_TMP/w.toml" >/dev/null 2>&1
for bad in "shop.Cart=0" "shop.Cart=65" "shop.Cart=x" "shop.Cart" "nosuch=2"; do
    "$WD_BIN" scale "$APP" "$bad" >"$WD_TMP/b2" 2>&1; rc=$?
    check "scale $bad: exit != 0, one line" bash -c "[ $rc != 0 ] && [ \$(wc -l <'$WD_TMP/b2') = 1 ]"
done
check "... nosuch names the group" grep -q 'no group nosuch' "$WD_TMP/b2"
check "... and nothing changed: 1 Cart" has shop.Cart running 1
"$WD_BIN" scale "$APP" >"$WD_TMP/b3" 2>&1; rc=$?
check "scale without GROUP=N: exit != 0" [ "$rc" != 0 ]
check "down" "$WD_BIN" down "$APP"
finish
