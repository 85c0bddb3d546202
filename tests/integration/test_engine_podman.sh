#!/bin/bash
# The engine suite of test_engine.sh against Podman's Docker-compatible API, on a
# `podman system service` of this test's own (stopped, and its objects removed, on exit).
# Podman 4.3 here: runc rather than crun (crun fails on this cgroup-v1/hybrid host, see
# docs/docker-engine.md §7); healthchecks need systemd and are skipped by the suite.
. "$(dirname "$0")/lib.sh"
WD_ENGINE_SUITE_ONLY=1 . "$(dirname "$0")/test_engine.sh"

if ! command -v podman >/dev/null; then
    if [ "${WD_REQUIRE_ENGINE:-}" = 1 ] && [ "${WD_REQUIRE_PODMAN:-}" = 1 ]; then
        not_ok "podman installed (apt-get install -y podman)"
        exit 1
    fi
    skip "podman is not installed (apt-get install -y podman)"
    exit 0
fi

build_tools
PSOCK=$WD_TMP/podman.sock
runtime=()
command -v runc >/dev/null && runtime=(--runtime runc)
podman "${runtime[@]}" system service --time=0 "unix://$PSOCK" >"$WD_TMP/podman-service.log" 2>&1 &
PPID_SVC=$!
# Hooks run in order at exit: our own cleanup through the API (engine_suite registers it),
# then podman's CLI by label as a safety net, then stop the service.
podman_down() {
    podman ps -aq --filter "label=$LBL" | xargs -r podman rm -f >/dev/null 2>&1
    podman network ls -q --filter "label=$LBL" | xargs -r podman network rm -f >/dev/null 2>&1
    podman images -q --filter "label=$LBL" | sort -u | xargs -r podman rmi -f >/dev/null 2>&1
    kill "$PPID_SVC" 2>/dev/null
    wait "$PPID_SVC" 2>/dev/null
}
on_cleanup podman_down
if ! wait_for test -S "$PSOCK"; then
    not_ok "podman system service started ($(tail -3 "$WD_TMP/podman-service.log"))"
    kill "$PPID_SVC" 2>/dev/null
    exit 1
fi
ok "podman system service on a socket of our own (${runtime[*]:-default runtime})"
export DOCKER_HOST=unix://$PSOCK

# Can Podman run a container at all here? If not, say so once and run what works.
probe=$(WD_HOST=$DOCKER_HOST "$D" image --app probe-$WD_TEST_RUN --binary "$ECHO" --name echo 2>&1 |
    sed -n 's/^tag=//p')
perr=$(WD_HOST=$DOCKER_HOST "$D" create "wdt-$WD_TEST_RUN-probe" "$probe" --entrypoint /app/echo \
    --start -- sleep 2>&1 >/dev/null)
if [ -n "$perr" ]; then
    skip_or_fail "podman cannot run containers here: ${perr#error: }"
    out=$(WD_HOST=$DOCKER_HOST "$D" net-create "wdt-$WD_TEST_RUN-net" 2>&1)
    check "podman: network create" test -n "$(sed -n 's/^id=//p' <<<"$out")"
    check "podman: image load" test -n "$probe"
    WD_HOST=$DOCKER_HOST "$D" cleanup "$LBL" >/dev/null 2>&1
    finish
fi
WD_HOST=$DOCKER_HOST "$D" rm "wdt-$WD_TEST_RUN-probe" force >/dev/null 2>&1

engine_suite podman
finish
