#!/bin/bash
# The engine suite of test_engine.sh against Podman's Docker-compatible API, on a
# `podman system service` of this test's own (stopped, and its objects removed, on exit).
# Podman 4.3 here: runc rather than crun (crun fails on this cgroup-v1/hybrid host, see
# docs/docker-engine.md §7); healthchecks need systemd and are skipped by the suite.
. "$(dirname "$0")/lib.sh"
WD_ENGINE_SUITE_ONLY=1 . "$(dirname "$0")/test_engine.sh"

require_podman

build_tools
podman_service "$LBL" # at exit: podman's CLI removes what carries $LBL, then the service stops
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
