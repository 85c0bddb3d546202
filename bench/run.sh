#!/usr/bin/env bash
# bench/run.sh [BUILD] - `make bench`: weaver-docker against `weaver multi deploy` (weaver CLI
# v0.24.6 from `make apps`) and against a bare create+start of containers, in one run, on the
# real engine. Not a test: it measures, prints a table with ratios and a one-line summary of the
# goals (issue 5 "Benchmark"), and exits 0 unless something could not be measured at all.
#
#   1. cold start: command -> first HTTP 200 on the listener, `weaver-docker up -d` (image
#      already built) vs `weaver multi deploy`, median of BENCH_REPS (3); the very first up, with
#      an image build, separately. Goal <= 1.5x multi.
#   2. re-up after `down` with an unchanged binary: -v says the image was "reused"; its time.
#   3. latency p50/p99 over BENCH_LAT_N (2000) sequential keep-alive GETs: /price (Main ->
#      colocated Pricer) and /whoami (Main -> Cart, another group). Goal <= 1.2x multi.
#   4. shim: VmRSS of PID 1 of every container (max, mean) and the binary's size.
#   5. wide (50 groups + main): `up -d` -> first "50 ok" vs a bare create+start of 51
#      containers from the same image through our client (bench/startn.c). Goal <= 1.1x.
#   First bench/engine.sh (engine client figures), then bench/hostports.sh (host_ports latency
#   against the host database directly), bench/mtls.sh (component-call latency with [docker]
#   mtls = true against without), bench/logflood.sh (log lines/s with the terminal read or
#   not, against weaver multi; listener p99 during a flood) and bench/listener.sh (wrk's
#   requests/s through the listener against the container directly; its listener_* lines make
#   a row of the table) and bench/metricscost.sh (the deployer's CPU and RSS while polling
#   the metrics of 51 groups, against weaver multi) and bench/rollout.sh (up of v2 over a running
#   v1 against a cold up of v2; listener p99 during the switch) and bench/composeimage.sh (the
#   compose image against the up image); their *_ lines go into the summary.
#
# Everything created carries WEAVER_DOCKER_LABELS=org.weaver-docker.test=bench-<pid> and is
# removed on exit (containers, networks; images are kept). App names bench-shop/bench-wide, own
# listener ports. Knobs: BENCH_REPS, BENCH_LAT_N, BENCH_KEEP=1 (keep the temp dir with logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
SHIM=$BUILD/shim/weaver-docker-shim
LIB=$BUILD/libwd.a
WEAVER=$ROOT/build/go/bin/weaver
PY="python3 $ROOT/bench/bench.py"
REPS=${BENCH_REPS:-3}
LAT_N=${BENCH_LAT_N:-2000}
SHOP_APP=bench-shop
WIDE_APP=bench-wide
NWIDE=51

for f in "$WD" "$SHIM" "$LIB" "$WEAVER" "$ROOT/build/go/apps/shop" "$ROOT/build/go/apps/wide"; do
    [ -e "$f" ] || { echo "bench: $f is missing; run 'make all apps' (BUILD=$BUILD)" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "bench: needs the docker CLI" >&2; exit 1; }

TAG=bench-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
TMP=$(mktemp -d /tmp/wd-bench.XXXXXX)
export XDG_STATE_HOME=$TMP/state # deployer logs stay with the bench
mkdir -p "$XDG_STATE_HOME"       # (weaver-docker does not create a missing XDG_STATE_HOME)
RES=$TMP/results
: >"$RES"
MULTI_PGID=
MULTI_NPROC=1
WD_NCONT=?
DEPLOYERS=()

T_START=$(date +%s)
log() { printf "bench: [%3ds] %s\n" $(($(date +%s) - T_START)) "$*" >&2; }
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }
now_ms() { date +%s%3N; }

stop_multi() { # pgid; SIGINT to the group, then verify that every process of it is gone
    local pg=$1 pids t0 left i
    pids=$(ps -eo pid=,pgid= | awk -v g="$pg" '$2 == g {print $1}' | tr '\n' ' ')
    t0=$(now_ms)
    kill -INT -- "-$pg" 2>/dev/null || true
    for i in $(seq 1 300); do
        left=
        for p in $pids; do [ -d /proc/$p ] && left="$left $p"; done
        [ -z "$left" ] && break
        sleep 0.05
    done
    put stop_multi_ms $(($(now_ms) - t0))
    if [ -n "$left" ]; then
        put note "weaver multi (pgid $pg): processes left 15 s after SIGINT to the group:$left (killed)"
        put multi_left "$(echo $left | wc -w) of $(echo $pids | wc -w) LEFT"
        kill -KILL $left 2>/dev/null || true
        return 1
    fi
    MULTI_NPROC=$(echo $pids | wc -w)
    put multi_left "0 of $MULTI_NPROC (pids checked)"
    return 0
}

cleanup() {
    local rc=$?
    set +e
    [ -n "$MULTI_PGID" ] && stop_multi "$MULTI_PGID" >/dev/null 2>&1
    for app in $SHOP_APP $WIDE_APP; do "$WD" down "$app" >/dev/null 2>&1; done
    for p in "${DEPLOYERS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" |
        xargs -r docker network rm >/dev/null 2>&1
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "bench: logs and results kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- engine client figures (another script), before ours so our summary is the last line ----
if [ -x "$ROOT/bench/engine.sh" ]; then
    echo "== bench/engine.sh"
    "$ROOT/bench/engine.sh" "$BUILD" || put note "bench/engine.sh failed (exit $?)"
    echo
elif [ -e "$ROOT/bench/engine.sh" ]; then
    echo "== bench/engine.sh"
    bash "$ROOT/bench/engine.sh" "$BUILD" || put note "bench/engine.sh failed (exit $?)"
    echo
else
    put note "bench/engine.sh not present: engine client figures skipped"
fi

# ---- setup ----
log "temp $TMP, labels $WEAVER_DOCKER_LABELS"
cc=${CC:-gcc}
# shellcheck disable=SC2046
$cc -std=gnu11 -O2 -D_GNU_SOURCE -I"$ROOT" -I"$BUILD/proto" -o "$TMP/startn" "$ROOT/bench/startn.c" \
    "$LIB" $(pkg-config --libs libcurl libcjson libprotobuf-c libarchive libcrypto yaml-0.1) -lpthread
mkdir -p "$TMP/shop" "$TMP/wide"
SP=$($PY freeport) MP=$($PY freeport)
while [ "$MP" = "$SP" ]; do MP=$($PY freeport); done
WP=$($PY freeport)
$PY mkconf "$ROOT/tests/apps/shop/weaver.toml" "$TMP/shop/weaver.toml" $SHOP_APP "$SP" "$MP"
$PY mkconf "$ROOT/tests/apps/wide/weaver.toml" "$TMP/wide/weaver.toml" $WIDE_APP "$WP" "$WP"
"$WD" down $SHOP_APP >/dev/null 2>&1 || true
"$WD" down $WIDE_APP >/dev/null 2>&1 || true
put shim_size "$(stat -c %s "$SHIM") bytes ($(awk "BEGIN{printf \"%.1f\", $(stat -c %s "$SHIM")/1024}") KiB, static)"
put engine_version "$(docker version --format '{{.Server.Version}}' 2>/dev/null)"
# The very first up must build the image: drop the bench apps' own images from earlier runs
# (never anyone else's). Their tags include WEAVER_DOCKER_LABELS (our per-run label), so they
# would never be reused anyway.
for app in $SHOP_APP $WIDE_APP; do
    docker images --format '{{.Repository}}:{{.Tag}}' "weaver-docker/$app" | xargs -r docker rmi >/dev/null 2>&1 || true
done

SURL=http://127.0.0.1:$SP
MURL=http://127.0.0.1:$MP

wd_up() { # log, urls... -> JSON in $j; remembers the deployer pid
    local out=$1 pid
    shift
    local urls=()
    for u in "$@"; do urls+=(--url "$u"); done
    j=$($PY cold --out "$out" --timeout 300 "${urls[@]}" -- "$WD" -v up -d "$TMP/$APPDIR/weaver.toml")
    pid=$(sed -n 's/.*is up (deployer pid \([0-9]*\)).*/\1/p' "$out" | tail -n 1)
    if [ -n "$pid" ]; then DEPLOYERS+=("$pid"); fi
}
image_line() { grep -o 'image weaver-docker/[^ ]* \(built\|reused\) ([0-9]* ms)' "$1" | tail -n 1; }
wd_down() { # app key
    local t0
    t0=$(now_ms)
    "$WD" down "$1" >>"$TMP/down.log" 2>&1 || put note "down $1 failed: $(tail -n 1 "$TMP/down.log")"
    put "$2" $(($(now_ms) - t0))
}
check() { # json label: fail loudly when a deployment did not answer
    local e
    e=$(jget "$1" error)
    if [ -n "$e" ]; then
        echo "bench: $2: $e" >&2
        return 1
    fi
}

# ---- 1-4: shop ----
APPDIR=shop
log "shop: first up (image build)"
wd_up "$TMP/wd-first.log" "$SURL/healthz" "$SURL/whoami"
check "$j" "first up of $SHOP_APP" || { cat "$TMP/wd-first.log" >&2; exit 1; }
put first_wd_ms "$(jget "$j" t_0_ms)"
put first_image "$(image_line "$TMP/wd-first.log" | sed 's/^image [^ ]* //')"
wd_down $SHOP_APP down_first_ms

for rep in $(seq 1 "$REPS"); do
    log "shop: rep $rep/$REPS weaver-docker"
    out=$TMP/wd-$rep.log
    wd_up "$out" "$SURL/healthz" "$SURL/whoami"
    check "$j" "up of $SHOP_APP (rep $rep)" || { cat "$out" >&2; exit 1; }
    put cold_wd_ms "$(jget "$j" t_0_ms)"
    put cold_wd_whoami_ms "$(jget "$j" t_1_ms)"
    put cold_wd_exit_ms "$(jget "$j" exit_ms)"
    il=$(image_line "$out")
    put reup_image "${il#image weaver-docker/}"
    case $il in
    *reused*) put reup_image_ms "$(echo "$il" | sed 's/.*(\([0-9]*\) ms).*/\1/')" ;;
    *) put reup_rebuilt_rep "$rep" ;;
    esac
    if [ "$rep" = "$REPS" ]; then
        log "shop: latency through weaver-docker ($LAT_N x 2)"
        for p in price whoami; do
            q="$p"; [ $p = price ] && q="price?item=apple"
            l=$($PY lat --url "$SURL/$q" -n "$LAT_N" --warmup 200)
            put lat_wd_${p}_p50 "$(jget "$l" p50_us)"
            put lat_wd_${p}_p99 "$(jget "$l" p99_us)"
            [ "$(jget "$l" errors)" = 0 ] || put note "weaver-docker /$p: $(jget "$l" errors) errors"
            put lat_wd_${p}_conns "$(jget "$l" connections)"
        done
        r=$($PY rss "org.weaver-docker.test=$TAG" "org.weaver-docker.app=$SHOP_APP")
        put rss_shop_json "$r"
        WD_NCONT=$(jget "$r" n)
    fi
    wd_down $SHOP_APP down_wd_ms

    log "shop: rep $rep/$REPS weaver multi"
    j=$($PY cold --setsid --out "$TMP/multi-$rep.log" --timeout 120 --url "$MURL/healthz" --url "$MURL/whoami" -- \
        "$WEAVER" multi deploy "$TMP/shop/weaver.toml")
    MULTI_PGID=$(jget "$j" pid)
    check "$j" "weaver multi deploy (rep $rep)" || { cat "$TMP/multi-$rep.log" >&2; exit 1; }
    put cold_multi_ms "$(jget "$j" t_0_ms)"
    put cold_multi_whoami_ms "$(jget "$j" t_1_ms)"
    if [ "$rep" = "$REPS" ]; then
        log "shop: latency through weaver multi ($LAT_N x 2)"
        for p in price whoami; do
            q="$p"; [ $p = price ] && q="price?item=apple"
            l=$($PY lat --url "$MURL/$q" -n "$LAT_N" --warmup 200)
            put lat_multi_${p}_p50 "$(jget "$l" p50_us)"
            put lat_multi_${p}_p99 "$(jget "$l" p99_us)"
            [ "$(jget "$l" errors)" = 0 ] || put note "weaver multi /$p: $(jget "$l" errors) errors"
        done
    fi
    stop_multi "$MULTI_PGID" || true
    MULTI_PGID=
done
if grep -q '^reup_rebuilt_rep=' "$RES"; then
    put reup_rebuilt "YES (reps $(sed -n 's/^reup_rebuilt_rep=//p' "$RES" | tr '\n' ' '))"
else
    put reup_rebuilt "none (-v: reused, $REPS of $REPS)"
fi
put reup_image_short "reused in $(grep -c '^reup_image_ms=' "$RES") of $REPS ups ($(sed -n 's/^reup_image_ms=//p' "$RES" | sort -n | tr '\n' ' ' | sed 's/ $//;s/ /, /g') ms)"
put detail "cold start: $SHOP_APP; weaver-docker ran $WD_NCONT containers (1 replica per group), weaver multi $((MULTI_NPROC - 1)) weavelet processes (its default replication) + itself"
put detail "latency: $LAT_N sequential GETs per path after 200 warm-up on one keep-alive connection (python http.client), each deployer measured alone"

# ---- 5: wide ----
APPDIR=wide
WURL=http://127.0.0.1:$WP/
done_reps=0
attempt=0
while [ $done_reps -lt "$REPS" ] && [ $attempt -le "$REPS" ]; do
    attempt=$((attempt + 1))
    log "wide: weaver-docker up -d (attempt $attempt)"
    out=$TMP/wide-$attempt.log
    wd_up "$out" "$WURL"
    check "$j" "up of $WIDE_APP" || { cat "$out" >&2; exit 1; }
    [ "$(jget "$j" body_0)" = "50 ok" ] || put note "wide answered '$(jget "$j" body_0)'"
    il=$(image_line "$out")
    IMAGE=$(echo "$il" | awk '{print $2}')
    if [ "$done_reps" = 0 ]; then
        r=$($PY rss "org.weaver-docker.test=$TAG" "org.weaver-docker.app=$WIDE_APP")
        put rss_wide_json "$r"
    fi
    case $il in
    *built*)
        put detail "wide: the run's first up built the image (${il#image }) and is not counted: $(jget "$j" t_0_ms | cut -d. -f1) ms to '50 ok'"
        wd_down $WIDE_APP wide_down_ms
        continue
        ;;
    esac
    put wide_wd_ms "$(jget "$j" t_0_ms)"
    put wide_wd_exit_ms "$(jget "$j" exit_ms)"
    wd_down $WIDE_APP wide_down_ms

    log "wide: baseline create+start of $NWIDE containers ($IMAGE)"
    b=$("$TMP/startn" "$IMAGE" $NWIDE "$TAG-base" wide)
    echo "$b" >>"$TMP/baseline.txt"
    put wide_base_ms "$(echo "$b" | sed 's/^ms=\([0-9.]*\).*/\1/')"
    put wide_base_line "$b"
    log "wide: removing the baseline containers"
    t0=$(now_ms)
    "$TMP/startn" --cleanup >>"$TMP/baseline.txt"
    put wide_base_rm_ms $(($(now_ms) - t0))
    done_reps=$((done_reps + 1))
done
put wide_n $NWIDE

# sub_bench NAME WHAT: run bench/NAME.sh to $TMP/NAME.out; its NAME_*=... lines go into the
# summary as details (a script that fails or is missing is a note)
sub_bench() {
    local out=$TMP/$1.out rc=0 l
    : >"$out"
    if [ ! -e "$ROOT/bench/$1.sh" ]; then
        put note "bench/$1.sh not present: $2 figures skipped"
        return
    fi
    log "bench/$1.sh"
    bash "$ROOT/bench/$1.sh" "$BUILD" >"$out" || rc=$?
    [ $rc = 0 ] || put note "bench/$1.sh failed (exit $rc)"
    while IFS= read -r l; do
        case $l in
        "$1"_*=*) put detail "$l" ;;
        esac
    done <"$out"
}
HP_OUT=$TMP/hostports.out
MT_OUT=$TMP/mtls.out
sub_bench hostports host_ports   # host_ports latency against the host database directly
sub_bench mtls mtls              # component calls with [docker] mtls against without (issue 10)
sub_bench logflood "log flood"   # lines/s to the log file, terminal read or not, vs multi (16)
sub_bench metricscost "metrics cost" # the deployer polling 51 groups' metrics, vs multi (11)
sub_bench rollout rollout        # up of v2 over v1 against a cold up of v2; p99 meanwhile (12)
sub_bench composeimage "compose image" # the compose image against the up image (13)

# ---- listener throughput (another script, issue 10): its table below, its figures in ours ----
LS_OUT=$TMP/listener.out
: >"$LS_OUT"
if [ -e "$ROOT/bench/listener.sh" ]; then
    log "bench/listener.sh"
    rc=0
    bash "$ROOT/bench/listener.sh" "$BUILD" >"$LS_OUT" || rc=$?
    [ $rc = 0 ] || put note "bench/listener.sh failed (exit $rc)"
    while IFS= read -r l; do
        case $l in
        listener_skipped=*) put note "listener throughput skipped: ${l#*=}" ;;
        listener_*=*) put "${l%%=*}" "${l#*=}" ;;
        esac
    done <"$LS_OUT"
else
    put note "bench/listener.sh not present: listener throughput skipped"
fi

# ---- table ----
python3 - "$RES" <<'EOF' >>"$RES"
import json, statistics, sys
d = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    d.setdefault(k, []).append(v)
for k in ("rss_shop_json", "rss_wide_json"):
    if k in d:
        r = json.loads(d[k][0])
        kib = r["kib"]
        if kib:
            print("%s=%d KiB / %.0f KiB over %d containers" % (k[:-5], max(kib), statistics.fmean(kib), len(kib)))
        else:
            print("%s=not measured (%d containers, no /proc access)" % (k[:-5], r["n"]))
def vals(k):
    return ", ".join("%.0f" % float(v) for v in d.get(k, []) if v)
print("detail=per run (ms): cold weaver-docker [%s], weaver multi [%s]; wide weaver-docker [%s], baseline [%s]"
      % (vals("cold_wd_ms"), vals("cold_multi_ms"), vals("wide_wd_ms"), vals("wide_base_ms")))
lines = d.get("wide_base_line", [])
if lines:
    ms = [float(l.split()[0][3:]) for l in lines]
    m = statistics.median(ms)
    best = min(lines, key=lambda l: abs(float(l.split()[0][3:]) - m))
    print("detail=wide baseline, median run: " + best)
EOF
log "done measuring"
if grep -qv '^hostports_' "$HP_OUT"; then
    echo
    echo "== bench/hostports.sh"
    grep -v '^hostports_' "$HP_OUT"
fi
if grep -qv '^mtls_' "$MT_OUT"; then
    echo
    echo "== bench/mtls.sh"
    grep -v '^mtls_' "$MT_OUT"
fi
if grep -qv '^listener_' "$LS_OUT"; then
    echo
    echo "== bench/listener.sh"
    grep -v '^listener_' "$LS_OUT"
fi
echo
echo "== weaver-docker bench ($(basename "$BUILD"), engine $(sed -n 's/^engine_version=//p' "$RES"), $(nproc) CPUs)"
$PY report "$RES"
