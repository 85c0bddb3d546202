#!/bin/bash
# `weaver-docker compose` under Podman (issue 13, docs/design/compose.md "Podman"): the file runs
# the shop app under podman-compose and under the Go Compose CLI (v5, built by
# tests/apps/build.sh) pointed at Podman's socket, with no weaver-docker process on the host:
# answers through the listener, a group scaled to 3 replicas that all serve, crashed containers
# replaced, ps, logs, nothing left after down. Everything runs on a `podman system service` of
# this test's own (its socket in WD_TMP; stopped, and its objects removed, on exit).
# Podman 4.3 here: runc rather than crun (crun fails on this cgroup-v1/hybrid host); no systemd,
# so Podman runs no healthchecks.
. "$(dirname "$0")/lib.sh"

require_podman
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
[ -x "$WD_SHIM" ] || { not_ok "shim built ($WD_SHIM)"; finish; }
export WEAVER_DOCKER_SHIM=$WD_SHIM
PC=${WD_PODMAN_COMPOSE:-podman-compose}
DC5=${WD_DOCKER_COMPOSE_V5:-$WD_ROOT/build/go/bin/docker-compose-v5}
LBL="org.weaver-docker.test=$WD_TEST_RUN"

# ---- Podman: a service of our own; the podman CLI (and so podman-compose) talks to it too ----
podman_service "$LBL"
# the podman CLI is then a client of that service (CONTAINER_HOST implies --remote); the
# lib.sh cleanup's docker CLI and the Go Compose CLI reach it through DOCKER_HOST
export CONTAINER_HOST=unix://$PSOCK DOCKER_HOST=unix://$PSOCK
check "the podman CLI talks to our service" \
    bash -c "podman version 2>/dev/null | grep -q '^Server:'"

sed "s|^binary = .*|binary = \"$APPS/shop\"|" "$WD_ROOT/tests/apps/shop/weaver.toml" >"$WD_TMP/weaver.toml"
F=$WD_TMP/shop.yml
get() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT$1"; }
lab="label=$LBL"
nothing_left() { # no container, network or volume of this run
    [ -z "$(podman ps -aq --filter "$lab")" ] && [ -z "$(podman network ls -q --filter "$lab")" ] &&
        [ -z "$(podman volume ls -q --filter "$lab")" ]
}

# ---- generate: the image is built in Podman's store, the file is Podman's flavour ----
if "$WD_BIN" compose -o "$F" -p "wdp$$" --save-images "$WD_TMP/img" "$WD_TMP/weaver.toml" \
    >"$WD_TMP/gen.out" 2>"$WD_TMP/gen.err"; then
    ok "compose against Podman's socket wrote the file"
else
    not_ok "compose: $(cat "$WD_TMP/gen.err")"
    finish
fi
diag "$(tr '\n' ' ' <"$WD_TMP/gen.out")"
PORT=$(sed -n 's/^listener shop on port \([0-9]*\)$/\1/p' "$WD_TMP/gen.out")
IMG=$(sed -n 's/^image \(sha256:[0-9a-f]*\) .*/\1/p' "$WD_TMP/gen.out")
check "image by ID (sha256:...) in the file" grep -q "image: \"$IMG\"" "$F"
check "the image is in Podman's store" podman image exists "$IMG"
check "no host-gateway in the file (podman refuses it)" bash -c "! grep -q host-gateway '$F'"
check "nofile and nproc set on every service (Podman's defaults cannot be set here)" \
    test "$(grep -c 'ulimits: {nofile: 4096, nproc: 4096}' "$F")" = 5
check "no healthchecks (podman-compose 1.0.3 runs them through /bin/sh; Podman acts on none)" \
    bash -c "! grep -q healthcheck '$F'"
check "prints the podman-compose command" grep -q "^run:   podman-compose -f $F -p wdp$$ up -d" "$WD_TMP/gen.out"
# the other way in: an archive that 'podman load' takes (the same ID, as on Docker)
IMGTAR=$(ls "$WD_TMP"/img/shop-*.tar 2>/dev/null | head -1)
check "--save-images from Podman: podman load gives the same image ID" \
    bash -c "podman load -i '$IMGTAR' 2>&1 | grep -q '${IMG#sha256:}'"
"$WD_BIN" compose --podman --swarm -o "$WD_TMP/x.yml" "$WD_TMP/weaver.toml" >/dev/null 2>"$WD_TMP/x.err"
rc=$?
check "--podman with --swarm is refused (exit $rc): $(cat "$WD_TMP/x.err")" test $rc = 2 -a ! -e "$WD_TMP/x.yml"

# ---- one compose tool: TOOL (check names), PROJ, and the functions dc (the tool on $F) ----
carts() { for i in $(seq 1 15); do get /whoami; echo; done | sed -n 's/.*cart=//p' | sort -u | wc -l; }
cid() { # SERVICE: one running container of it
    podman ps -q --filter "$lab" --filter "label=com.docker.compose.project=$PROJ" \
        --filter "label=com.docker.compose.service=$1" | head -1
}
# A crash: SIGKILL to the container's PID 1 from the host (a `podman kill` is a stop by the
# user, which the restart policy leaves alone)
crash() { # SERVICE
    local c
    c=$(cid "$1")
    kill -9 "$(podman inspect -f '{{.State.Pid}}' "$c")"
    echo "$c"
}
running() { podman ps -q --filter "$lab" --filter "label=com.docker.compose.project=$PROJ" | wc -l; }

shop_run() { # SCALE_CMD...: how this tool takes shop-cart to 3 replicas
    local ours p n i main_c healed regs
    if dc up -d >"$WD_TMP/up.log" 2>&1 && wait_for get /healthz; then
        ok "$TOOL: up -d: the listener answers"
    else
        not_ok "$TOOL: up -d: $(tail -5 "$WD_TMP/up.log" | tr '\n' ' ')"
        podman logs "$(cid manager)" 2>&1 | tail -20 | sed 's/^/# /'
    fi
    check "$TOOL: /buy?item=apple -> bought apple: 1 in cart (stock 9)" \
        test "$(get '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
    check "$TOOL: the listener is published on 127.0.0.1 only" \
        test "$(podman port "$(cid manager)" | sort -u)" = "$PORT/tcp -> 127.0.0.1:$PORT"
    # (the manager runs in its container's namespaces: its exe is /weaver-docker there); only
    # this run's, by its labels in the environment: other tests may run the same binary
    ours=0
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$(readlink -f "$WD_BIN")" ] &&
            tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "WEAVER_DOCKER_LABELS=$LBL" &&
            ours=$((ours + 1))
    done
    check "$TOOL: no weaver-docker process on the host ($ours found)" test "$ours" = 0
    check "$TOOL: 5 containers running (manager and 4 groups)" test "$(running)" = 5
    check "$TOOL: ps lists them" bash -c "dc ps 2>/dev/null | grep -c '$PROJ.shop-cart.1\|$PROJ.manager.1' | grep -qx 2"
    check "$TOOL: logs manager: the weaver logs of the app" \
        bash -c "dc logs manager 2>&1 | grep -q 'shop.Cart .*added item'"

    # ---- three cart replicas, each one answering ----
    "$@" >"$WD_TMP/scale.log" 2>&1
    n=0
    for i in $(seq 1 120); do n=$(carts); [ "$n" = 3 ] && break; sleep 0.5; done
    check "$TOOL: shop-cart at 3 replicas: /whoami answered by 3 carts" test "$n" = 3
    regs=$(podman logs "$(cid manager)" 2>&1 | grep -c 'group shop.Cart replica . registered')
    check "$TOOL: the manager registered 3 shop.Cart replicas ($regs)" test "$regs" -ge 3
    check "$TOOL: 7 containers running" test "$(running)" = 7

    # ---- a crashed container is restarted by its policy and routed to again ----
    main_c=$(crash weaver-main)
    healed=0
    for i in $(seq 1 600); do
        if get '/buy?item=plum' 2>/dev/null | grep -q '^bought plum'; then healed=1; break; fi
        sleep 0.2
    done
    check "$TOOL: main crashed (SIGKILL of PID 1): restarted, answers again" test "$healed" = 1
    check "$TOOL: restart count of the crashed container >= 1" \
        test "$(podman inspect -f '{{.RestartCount}}' "$main_c")" -ge 1
    crash shop-cart >/dev/null
    n=0
    for i in $(seq 1 120); do n=$(carts); [ "$n" = 3 ] && break; sleep 0.5; done
    check "$TOOL: a cart replica crashed: 3 carts answer again" test "$n" = 3

    # ---- down ----
    dc down -t 5 >"$WD_TMP/down.log" 2>&1
    wait_for bash -c "[ -z \"\$(podman ps -aq --filter '$lab')\" ]"
    check "$TOOL: down removes every container" test -z "$(podman ps -aq --filter "$lab")"
}

# ---- podman-compose (1.0.3: no config command, --scale ignored, down keeps the network) ----
if command -v "$PC" >/dev/null; then
    TOOL=podman-compose PROJ=wdp$$
    dc() { "$PC" -f "$F" -p "$PROJ" "$@"; }
    export -f dc
    export PC F PROJ
    on_cleanup "$PC -f $F -p $PROJ down -t 2"
    # podman-compose 1.0.3 ignores --scale: raise the group's deploy.replicas in the file and
    # run up -d again, which creates the missing containers and leaves the others running
    pc_scale() {
        python3 - "$F" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"(\n  shop-cart:\n(?:    .*\n)*?    deploy:\n      replicas: )1\n", r"\g<1>3\n", s)
open(p, "w").write(s)
PY
        grep -q 'replicas: 3' "$F" && dc up -d
    }
    shop_run pc_scale
    check "podman-compose: down leaves the network ${PROJ}_weaver (1.0.3 removes none)" \
        podman network exists "${PROJ}_weaver"
    podman network rm "${PROJ}_weaver" >/dev/null 2>&1
    check "podman-compose: after podman network rm, nothing is left" nothing_left
    sed -i 's/^\(      replicas: \)3$/\11/' "$F"
elif [ "${WD_REQUIRE_ENGINE:-}" = 1 ] && [ "${WD_REQUIRE_PODMAN:-}" = 1 ]; then
    not_ok "podman-compose installed (apt-get install -y podman-compose)"
else
    skip "podman-compose is not installed (apt-get install -y podman-compose)"
fi

# ---- the Go Compose CLI on Podman's socket ----
if [ -x "$DC5" ]; then
    TOOL="compose v5" PROJ=wdp5$$
    dc() { "$DC5" -f "$F" -p "$PROJ" "$@"; }
    export -f dc
    export DC5 F PROJ
    on_cleanup "$DC5 -f $F -p $PROJ down -t 2"
    check "$TOOL: config -q accepts the file" dc config -q
    dc config -q >/dev/null 2>"$WD_TMP/config.err"
    check "$TOOL: config has nothing to warn about ($(head -c 200 "$WD_TMP/config.err"))" \
        test ! -s "$WD_TMP/config.err"
    shop_run dc up -d --scale shop-cart=3
    wait_for nothing_left
    check "$TOOL: down leaves nothing (containers, network)" nothing_left
else
    skip_or_fail "compose v5: the Go Compose CLI is not built ($DC5; run make apps)"
fi
finish
