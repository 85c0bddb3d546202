#!/bin/bash
# Runs unit tests, fuzz-corpus replays and integration tests; ends with "N passed, N failed".
#   tests/run.sh --build build/default [--asan build/asan] [--only-unit|--only-integration]
set -u
cd "$(dirname "$0")/.."
build=build/default asan="" only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift ;;
    --asan) asan=$2; shift ;;
    --only-unit) only=unit ;;
    --only-integration) only=integration ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
passed=0 failed=0 skipped=0 failures=() skips=()
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_units() { # $1 build dir, $2 label
    local b=$1 label=$2 t out p f
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        out=$("$t" 2>&1); rc=$?
        printf '%s\n' "$out" | grep -E '^\[  (FAILED|ERROR) |^\[ +(FAILED|ERROR) +\]' >&2
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        p=${p:-0} f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; printf '%s\n' "$out" | tail -20 >&2; fi
        passed=$((passed + p)) failed=$((failed + f))
        [ "$f" -gt 0 ] && failures+=("$label $(basename "$t")")
        echo "unit($label) $(basename "$t"): $p passed, $f failed"
    done
    for t in "$b"/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        n=$(basename "$t")
        if out=$("$t" "tests/fuzz/corpus/${n#fuzz_}" 2>&1); then
            passed=$((passed + 1)); echo "replay($label) $n: ok (${out##* replayed })"
        else
            failed=$((failed + 1)); failures+=("replay $label $n"); printf '%s\n' "$out" | tail -20 >&2
        fi
    done
}

# Every tests/integration/test_*.sh runs. The Podman ones (test_engine_podman.sh,
# test_compose_podman.sh) start a Podman service of their own and skip when podman (or
# podman-compose) is missing, unless WD_REQUIRE_PODMAN=1 (set under CI) makes that a failure.
run_integration() {
    local t out rc p f
    export WD_BIN="$PWD/$build/weaver-docker" WD_SHIM="$PWD/$build/shim/weaver-docker-shim"
    export WD_REQUIRE_ENGINE=${WD_REQUIRE_ENGINE:-${CI:+1}} WD_REQUIRE_PODMAN=${WD_REQUIRE_PODMAN:-${CI:+1}}
    for t in tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        echo "== integration $(basename "$t")"
        out=$(mktemp)
        timeout 1200 bash "$t" 2>&1 | tee "$out"; rc=${PIPESTATUS[0]}
        p=$(grep -c '^ok ' "$out"); f=$(grep -c '^not ok ' "$out")
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $(basename "$t") exited $rc"; fi
        passed=$((passed + p)) failed=$((failed + f))
        while read -r l; do skips+=("$(basename "$t"): ${l#skip - }"); skipped=$((skipped + 1)); done \
            < <(grep '^skip - ' "$out")
        grep '^not ok ' "$out" | sed "s|^|$(basename "$t"): |" | while read -r l; do echo "$l"; done > "$out.f"
        while read -r l; do failures+=("$l"); done < "$out.f"
        rm -f "$out" "$out.f"
    done
}

[ "$only" = integration ] || run_units "$build" gcc
[ "$only" = integration ] || [ -z "$asan" ] || run_units "$asan" asan
[ "$only" = unit ] || run_integration
# The deployer itself under ASan+UBSan against real weavelets (leaks fail it at exit).
# test_terminal.sh too (a paused terminal must not freeze, nor leak in, the deployer), and
# test_cli.sh (ps, logs and down of every kind of deployment), test_metrics.sh and
# test_scale.sh, test_profile.sh (the control API, the metrics store fed by real weavelets,
# scaling, profiles merged), test_rollout.sh (two deployers, the split and the socket handover),
# test_versions.sh (every weaver release: the pipe protocol of v0.20-v0.22 included).
if [ "$only" != unit ] && [ -n "$asan" ] && [ -x "$asan/weaver-docker" ]; then
    for t in test_process.sh test_terminal.sh test_cli.sh test_metrics.sh test_scale.sh test_profile.sh test_dashboard.sh test_rollout.sh test_versions.sh; do
        echo "== integration $t (deployer built with ASan+UBSan)"
        out=$(mktemp)
        ASAN_OPTIONS=detect_leaks=1 WD_BIN="$PWD/$asan/weaver-docker" timeout 1200 bash tests/integration/$t 2>&1 | tee "$out"
        p=$(grep -c '^ok ' "$out"); f=$(grep -c '^not ok ' "$out")
        [ "$p" -gt 0 ] || f=$((f + 1))
        passed=$((passed + p)) failed=$((failed + f))
        [ "$f" -gt 0 ] && failures+=("asan $t: $f failed")
        rm -f "$out"
    done
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "Failures:"
    printf '  %s\n' "${failures[@]}"
fi
if [ ${#skips[@]} -gt 0 ]; then
    echo "Skipped:"
    printf '  %s\n' "${skips[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
