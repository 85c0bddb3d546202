#!/usr/bin/env bash
# bench/engine.sh [BUILD] - engine client figures (issue 4 "Benchmark"), not a test.
#   1. create+start of BENCH_N (50) containers from one image on one network, in one run:
#      our client in parallel (wd_docker_run_jobs), the engine's own `docker run -d` CLI loop,
#      and a bare sequential API loop through our client. Times and ratios.
#   2. image build time and size for a 10 MB binary: POST /images/load of our archive vs
#      POST /build of a tar context, cold (new content) and unchanged (tag exists: no upload).
# On Docker (default socket) and, when podman is installed, on a `podman system service` of our
# own (BENCH_PODMAN=0 to skip). Objects carry org.weaver-docker.test=bench-engine-<pid> and are
# removed on exit. Knobs: BENCH_N, BENCH_REPS (image runs, 3).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${BENCH_N:-50}
REPS=${BENCH_REPS:-3}
RUN=bench-engine-$$
LBL=org.weaver-docker.test=$RUN
export WEAVER_DOCKER_LABELS=$LBL
TMP=$(mktemp -d /tmp/wd-bench-engine.XXXXXX)
PODPID=""

cleanup() {
    local h
    for h in "" ${PODPID:+unix://$TMP/podman.sock}; do
        WD_HOST=$h "$D" cleanup "$LBL" >/dev/null 2>&1 || true
    done
    [ -n "$PODPID" ] && kill "$PODPID" 2>/dev/null && wait "$PODPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

if [ ! -f "$BUILD/libwd.a" ]; then
    echo "bench/engine.sh: $BUILD/libwd.a missing (make first)" >&2
    exit 1
fi
D=$TMP/engine_driver
# shellcheck disable=SC2046
gcc -std=gnu11 -D_GNU_SOURCE -I"$ROOT" $(pkg-config --cflags libcjson libcurl) -O2 \
    -o "$D" "$ROOT/tests/drivers/engine_driver.c" "$BUILD/libwd.a" \
    $(pkg-config --libs libcurl libcjson libarchive libcrypto libprotobuf-c yaml-0.1 2>/dev/null) \
    -lpthread || exit 1
ECHO=$TMP/echo
if command -v musl-gcc >/dev/null; then
    musl-gcc -static -Os -pthread -o "$ECHO" "$ROOT/tests/drivers/echo.c"
else
    gcc -static -Os -pthread -o "$ECHO" "$ROOT/tests/drivers/echo.c" 2>/dev/null
fi

field() { sed -n "s|^$1=||p" | head -1; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

# rm_bench HOST: remove this run's benchmark containers only (not timed)
rm_bench() { WD_HOST=$1 "$D" cleanup "$LBL" org.weaver-docker.role=bench >/dev/null 2>&1 || true; }
# rm_all HOST: everything of this run (containers, networks, images)
rm_all() { WD_HOST=$1 "$D" cleanup "$LBL" >/dev/null 2>&1 || true; }

bench_engine() { # NAME HOST
    local E=$1 H=$2 img net t0 t1 par cli seq out i
    export WD_HOST=$H
    local info
    if ! info=$("$D" ping 2>&1); then
        echo "$E: not reachable: $info"
        return
    fi
    echo "== $E ($(field server <<<"$info"), API $(field api <<<"$info"))"
    img=$("$D" image --app bench-sleeper --binary "$ECHO" --name echo --shim "$ECHO" | field tag)
    net=$RUN-$E
    "$D" net-create "$net" >/dev/null

    # 1. create+start N
    out=$("$D" bench-par "$N" "$img" "$net" "$RUN-p" 2>&1) || echo "$out"
    par=$(sed -n 's/.*seconds=//p' <<<"$out")
    local thr
    thr=$(sed -n 's/.*threads=\([0-9]*\).*/\1/p' <<<"$out")
    rm_bench "$H"
    local dh=()
    [ -n "$H" ] && dh=(-H "$H")
    if command -v docker >/dev/null; then
        t0=$(now)
        for i in $(seq 1 "$N"); do
            docker "${dh[@]}" run -d --name "$RUN-c-$i" --network "$net" --label "$LBL" \
                --label org.weaver-docker.role=bench \
                --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 "$img" sleep >/dev/null 2>"$TMP/cli.err" || break
        done
        t1=$(now)
        if [ -s "$TMP/cli.err" ]; then
            cli=""
            echo "  docker run -d failed: $(head -1 "$TMP/cli.err")"
        else
            cli=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
        fi
    fi
    rm_bench "$H"
    out=$("$D" bench-seq "$N" "$img" "$net" "$RUN-s" 2>&1) || echo "$out"
    seq=$(sed -n 's/.*seconds=//p' <<<"$out")
    rm_bench "$H"
    printf '  create+start %d containers: parallel client (%s threads) %ss | docker run -d loop %ss | sequential API %ss\n' \
        "$N" "$thr" "$par" "${cli:-n/a}" "$seq"
    printf '  ratios: docker-run-loop/parallel %s, sequential/parallel %s\n' \
        "$(ratio "${cli:-0}" "$par")" "$(ratio "$seq" "$par")"

    # 2. images: 10 MB binary, load vs build, cold and unchanged
    local big=$TMP/big method r ms size
    for method in load build; do
        local cold=() warm=()
        for r in $(seq 1 "$REPS"); do
            cp "$ECHO" "$big"
            head -c $((10 * 1024 * 1024)) /dev/urandom >>"$big" # new content: a new tag (cold)
            out=$("$D" image --app "bench-big-$method" --binary "$big" --name app --shim "$ECHO" \
                --method "$method" 2>&1) || { echo "  $method: $out"; break; }
            cold+=("$(field ms <<<"$out")")
            size=$(field size <<<"$out")
            out=$("$D" image --app "bench-big-$method" --binary "$big" --name app --shim "$ECHO" \
                --method "$method" 2>&1)
            warm+=("$(field ms <<<"$out")")
            rm_all "$H" # drop the image again (it carries our label)
        done
        [ ${#cold[@]} -gt 0 ] || continue
        printf '  image 10 MB binary via %-5s: cold median %s ms, unchanged median %s ms, size %s bytes (binary+shim %s, overhead %s)\n' \
            "$method" "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${warm[@]}" | median)" \
            "$size" "$(($(stat -c %s "$big") + $(stat -c %s "$ECHO")))" \
            "$((size - $(stat -c %s "$big") - $(stat -c %s "$ECHO")))"
    done
    rm_all "$H"
}

bench_engine docker ""
if [ "${BENCH_PODMAN:-1}" = 1 ] && command -v podman >/dev/null; then
    rt=()
    command -v runc >/dev/null && rt=(--runtime runc)
    podman "${rt[@]}" system service --time=0 "unix://$TMP/podman.sock" >"$TMP/podman.log" 2>&1 &
    PODPID=$!
    for _ in $(seq 1 100); do [ -S "$TMP/podman.sock" ] && break; sleep 0.1; done
    bench_engine podman "unix://$TMP/podman.sock"
fi
