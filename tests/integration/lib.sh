# Sourced by tests/integration/test_*.sh. TAP-ish output: "ok - name" / "not ok - name".
# Every engine object a test makes carries org.weaver-docker.test=$WD_TEST_RUN; the EXIT trap
# removes them all, also when a test fails midway.
set -u
WD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WD_BIN=${WD_BIN:-$WD_ROOT/build/default/weaver-docker}
WD_SHIM=${WD_SHIM:-$WD_ROOT/build/default/shim/weaver-docker-shim}
WD_TEST_RUN=${WD_TEST_RUN:-t$$-$RANDOM}
export WEAVER_DOCKER_LABELS="org.weaver-docker.test=$WD_TEST_RUN"
WD_TMP=$(mktemp -d /tmp/wd-test.XXXXXX)
# the deployments' logs and status files: this run's own, gone with WD_TMP
export XDG_STATE_HOME=$WD_TMP/state
WD_CLEANUP_HOOKS=()
t_failed=0

ok() { echo "ok - $*"; }
# skip REASON: a check that cannot run here; counted apart and listed in the summary
skip() { echo "skip - $*"; }
# skip_or_fail REASON: skipped on a developer machine, a failure where WD_REQUIRE_ENGINE=1 (CI),
# which must cover every engine and mode the suite is meant to
skip_or_fail() { if [ "${WD_REQUIRE_ENGINE:-}" = 1 ]; then not_ok "$*"; else skip "$*"; fi; }
not_ok() { echo "not ok - $*"; t_failed=$((t_failed + 1)); }
# check NAME CMD...: runs CMD, ok if it exits 0
check() { local n=$1; shift; if "$@"; then ok "$n"; else not_ok "$n"; fi; }
diag() { echo "# $*"; }

engine_up() { docker info >/dev/null 2>&1; }
require_engine() {
    if ! engine_up; then
        if [ "${WD_REQUIRE_ENGINE:-}" = 1 ]; then not_ok "engine reachable"; exit 1; fi
        skip "no engine answers"; exit 0
    fi
}

# Podman: skip a test where it is not installed (fail where CI asks for it: WD_REQUIRE_PODMAN)
require_podman() {
    command -v podman >/dev/null && return 0
    if [ "${WD_REQUIRE_ENGINE:-}" = 1 ] && [ "${WD_REQUIRE_PODMAN:-}" = 1 ]; then
        not_ok "podman installed (apt-get install -y podman)"
        exit 1
    fi
    skip "podman is not installed (apt-get install -y podman)"
    exit 0
}

# podman_service LABEL: a `podman system service` of the test's own on PSOCK
# ($WD_TMP/podman.sock), with runc where there is one (crun fails on this cgroup-v1/hybrid
# host). At exit (after the hooks registered before it) whatever carries LABEL is removed with
# the podman CLI, then the service stops.
podman_service() {
    PSOCK=$WD_TMP/podman.sock PODMAN_LABEL=$1
    local runtime=()
    command -v runc >/dev/null && runtime=(--runtime runc)
    podman "${runtime[@]}" system service --time=0 "unix://$PSOCK" \
        >"$WD_TMP/podman-service.log" 2>&1 &
    PODMAN_SVC=$!
    on_cleanup podman_down
    if ! wait_for test -S "$PSOCK"; then
        not_ok "podman system service started ($(tail -3 "$WD_TMP/podman-service.log"))"
        exit 1
    fi
    ok "podman system service on a socket of our own (${runtime[*]:-default runtime})"
}
podman_down() {
    local f="label=$PODMAN_LABEL"
    podman ps -aq --filter "$f" | xargs -r podman rm -f
    podman network ls -q --filter "$f" | xargs -r podman network rm -f
    podman volume ls -q --filter "$f" | xargs -r podman volume rm -f
    podman images -q --filter "$f" | sort -u | xargs -r podman rmi -f
    kill "$PODMAN_SVC"
    wait "$PODMAN_SVC"
}

on_cleanup() { WD_CLEANUP_HOOKS+=("$*"); }
wd_cleanup() {
    local h
    for h in "${WD_CLEANUP_HOOKS[@]}"; do eval "$h" >/dev/null 2>&1 || true; done
    if engine_up; then
        local f="label=org.weaver-docker.test=$WD_TEST_RUN"
        docker ps -aq --filter "$f" | xargs -r docker rm -f >/dev/null 2>&1
        docker network ls -q --filter "$f" | xargs -r docker network rm >/dev/null 2>&1
        docker images -q --filter "$f" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    fi
    rm -rf "$WD_TMP"
}
trap wd_cleanup EXIT
trap 'exit 130' INT TERM

# engine_clean: asserts the engine holds none of this run's labeled objects
engine_clean() {
    local f="label=org.weaver-docker.test=$WD_TEST_RUN"
    [ -z "$(docker ps -aq --filter "$f")" ] && [ -z "$(docker network ls -q --filter "$f")" ]
}

# wait_for CMD... : retry up to ~60s (a loaded CI machine is slow; a pass is still at once)
wait_for() { local i; for i in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

finish() { [ "$t_failed" -eq 0 ]; exit $?; }
