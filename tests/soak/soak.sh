#!/usr/bin/env bash
# tests/soak/soak.sh [BUILD] - `make soak` (issue 10): long runs that look for leaks, on the real
# engine with the real shop app (4 groups). Not part of `make test` or CI: it took 71 minutes on
# 2 CPUs shared with other work (load 6-20): an up -d/down cycle 15 s (median), a restart 2.7 s,
# almost all of it the engine's container starts.
#
#   1. SOAK_CYCLES (100) cycles of `up -d` / `down -v` of shop (with a secret and a named volume,
#      so their staging and removal run every cycle); each cycle the app answers once through
#      its listener, and after each `down` none of the run's containers or networks is left.
#   2. A crash loop under a foreground `up`: GET /panic makes the Crasher (its own group) panic
#      and its weavelet exit with status 2; the script asks again as soon as it answers (the
#      call waits for the replacement), SOAK_RESTARTS (1000) times, with
#      WEAVER_DOCKER_RESTART_BACKOFF_MS=SOAK_BACKOFF (10,20) (the default backoff would reach
#      10 s per restart). Restarts are counted from the deployer's own lines ("restart #N").
#      The deployer's descriptors (/proc/PID/fd) and threads (/proc/PID/status) are sampled
#      over SOAK_SAMPLE_S (3) seconds of the loop after restart #10 and again after the last
#      restart: at the end the minimum and the maximum of each may exceed those at the start by
#      at most SOAK_FD_SLACK (2) and SOAK_THREAD_SLACK (1). The app must still answer, and
#      Ctrl-C (SIGINT) must end it with status 0.
#   3. Nothing left: none of the run's containers, networks, volumes or images (the last
#      `down --rmi`), no new dangling image, nothing in the deployers' TMPDIR, no new
#      /tmp/weaver-docker-* or /tmp/wd-soak* entry, and in the state directory only log files.
#      New /tmp/wd-* entries of other names are only counted ("others"): other test runs on the
#      machine make those.
#
# Prints progress on stderr and one summary line `soak: PASS ...` or `soak: FAIL ...` (with the
# counts and the run time) on stdout; exits 1 on any failure. Everything it creates carries
# WEAVER_DOCKER_LABELS=org.weaver-docker.test=soak-<pid> and is removed on exit.
# Knobs: SOAK_CYCLES, SOAK_RESTARTS, SOAK_BACKOFF, SOAK_FD_SLACK, SOAK_THREAD_SLACK,
# SOAK_SAMPLE_S, SOAK_CRASH_TIMEOUT (seconds for the crash loop, default 3600), SOAK_KEEP=1
# (keep the temp dir with every log).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
SHOP=$ROOT/build/go/apps/shop
CYCLES=${SOAK_CYCLES:-100}
RESTARTS=${SOAK_RESTARTS:-1000}
BACKOFF=${SOAK_BACKOFF:-10,20}
FD_SLACK=${SOAK_FD_SLACK:-2}
TH_SLACK=${SOAK_THREAD_SLACK:-1}
SAMPLE_S=${SOAK_SAMPLE_S:-3}
CRASH_TIMEOUT=${SOAK_CRASH_TIMEOUT:-3600}

for f in "$WD" "$SHOP"; do
    [ -x "$f" ] || { echo "soak: $f is missing; run 'make all apps'" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "soak: needs the docker CLI" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "soak: no engine answers" >&2; exit 1; }

TAG=soak-$$
LABEL=org.weaver-docker.test=$TAG
export WEAVER_DOCKER_LABELS=$LABEL
APP1=soak-updown-$$
APP2=soak-crash-$$
TMP=$(mktemp -d /tmp/wd-soak.XXXXXX)
export XDG_STATE_HOME=$TMP/state TMPDIR=$TMP/tmp # the deployers' temp files land in $TMPDIR
mkdir -p "$XDG_STATE_HOME" "$TMPDIR"
FG_PID=
FAILS=()
T0=$(date +%s)

log() { printf "soak: [%4ds] %s\n" $(($(date +%s) - T0)) "$*" >&2; }
fail() { FAILS+=("$*"); log "FAIL: $*"; }
tmp_entries() { ls -d /tmp/wd-* /tmp/weaver-docker-* 2>/dev/null | grep -vxF "$TMP" | sort; }
ours() { grep -E '^/tmp/(weaver-docker-|wd-soak)'; }
count() { # docker list command words... -> number of lines
    "$@" 2>/dev/null | grep -c .
}
n_containers() { count docker ps -aq --filter "label=$LABEL"; }
n_networks() { count docker network ls -q --filter "label=$LABEL"; }
n_volumes() { count docker volume ls -q --filter "label=$LABEL"; }
n_images() { count docker images -q --filter "label=$LABEL"; }
n_dangling() { count docker images -q --filter dangling=true; }

cleanup() {
    local rc=$?
    : >"$TMP/stop-panics" # the /panic driver, if it runs
    if [ -n "$FG_PID" ] && kill -0 "$FG_PID" 2>/dev/null; then
        kill -INT "$FG_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$FG_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$FG_PID" 2>/dev/null
    fi
    for a in $APP1 $APP2; do "$WD" down -v --rmi "$a" >/dev/null 2>&1; done
    docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=$LABEL" | xargs -r docker network rm >/dev/null 2>&1
    docker volume ls -q --filter "label=$LABEL" | xargs -r docker volume rm >/dev/null 2>&1
    docker images -q --filter "label=$LABEL" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    if [ "${SOAK_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "soak: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkconf() { # NAME FILE EXTRA-DOCKER-LINES...
    local name=$1 file=$2
    shift 2
    {
        echo "[serviceweaver]"
        echo "name = \"$name\""
        echo "binary = \"$SHOP\""
        echo 'colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]'
        echo "[docker]"
        echo 'listeners.shop = {address = "127.0.0.1:0"}'
        for l in "$@"; do echo "$l"; done
    } >"$file"
}
listener_port() { # APP -> port of listener shop, from ps --json
    "$WD" ps --json "$1" 2>/dev/null | python3 -c \
        'import json,sys; print(json.load(sys.stdin)[0]["listeners"]["shop"].rsplit(":",1)[1])' 2>/dev/null
}

TMP_BEFORE=$(tmp_entries)
DANGLING_BEFORE=$(n_dangling)
if [ "$(n_containers)$(n_networks)$(n_volumes)" != 000 ]; then
    echo "soak: objects labelled $LABEL exist before the start" >&2
    exit 1
fi

# ---- 1. up -d / down cycles ----
echo "soak secret" >"$TMP/secret.txt"
mkconf "$APP1" "$TMP/updown.toml" 'secrets = {soak = "./secret.txt"}' 'volumes = ["data:/var/lib/soak"]'
answered=0
left_after_down=0
cycle_ms=()
log "phase 1: $CYCLES cycles of up -d / down -v of $APP1 (4 groups)"
for i in $(seq 1 "$CYCLES"); do
    t=$(date +%s%3N)
    if ! "$WD" up -d "$TMP/updown.toml" >>"$TMP/updown.log" 2>&1; then
        fail "cycle $i: up -d failed: $(tail -n 1 "$TMP/updown.log")"
    else
        port=$(listener_port "$APP1")
        body=$(curl -fsS --max-time 10 "http://127.0.0.1:${port:-1}/buy?item=apple" 2>&1)
        if [ "$body" = "bought apple: 1 in cart (stock 9)" ]; then
            answered=$((answered + 1))
        else
            fail "cycle $i: the app did not answer (port ${port:-?}): $body"
        fi
    fi
    if [ "$i" = "$CYCLES" ]; then downflags=(-v --rmi); else downflags=(-v); fi
    "$WD" down "${downflags[@]}" "$APP1" >>"$TMP/updown.log" 2>&1 || fail "cycle $i: down failed: $(tail -n 1 "$TMP/updown.log")"
    nc=$(n_containers) nn=$(n_networks)
    if [ "$nc$nn" != 00 ]; then
        left_after_down=$((left_after_down + 1))
        fail "cycle $i: $nc containers, $nn networks left after down"
    fi
    cycle_ms+=($(($(date +%s%3N) - t)))
    [ $((i % 10)) = 0 ] && log "cycle $i/$CYCLES: $answered answered, last cycle ${cycle_ms[-1]} ms"
done
P1_S=$(($(date +%s) - T0))
CYC_MED=$(printf '%s\n' "${cycle_ms[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

# ---- 2. crash loop under a foreground up ----
mkconf "$APP2" "$TMP/crash.toml"
restarts() { grep -c 'group shop.Crasher replica 0 .*restarting in .*(restart #' "$TMP/crash.err" 2>/dev/null; }
sample() { # SECONDS -> "fd_min fd_max th_min th_max" of the foreground deployer
    local end=$(($(date +%s%3N) + $1 * 1000)) fds ths
    fds=() ths=()
    while [ "$(date +%s%3N)" -lt $end ]; do
        fds+=($(ls /proc/"$FG_PID"/fd 2>/dev/null | wc -l))
        ths+=($(awk '/^Threads:/ {print $2}' /proc/"$FG_PID"/status 2>/dev/null))
        sleep 0.05
    done
    printf '%s\n' "${fds[@]}" | sort -n | sed -n '1p;$p' | tr '\n' ' '
    printf '%s\n' "${ths[@]}" | sort -n | sed -n '1p;$p' | tr '\n' ' '
}
T2=$(date +%s)
log "phase 2: foreground up of $APP2, GET /panic until its Crasher restarted $RESTARTS times (backoff $BACKOFF ms)"
WEAVER_DOCKER_RESTART_BACKOFF_MS=$BACKOFF "$WD" up "$TMP/crash.toml" >"$TMP/crash.out" 2>"$TMP/crash.err" &
FG_PID=$!
port=
for _ in $(seq 1 600); do
    port=$(sed -n 's/.*listener "shop" at .*:\([0-9]*\)$/\1/p' "$TMP/crash.err" | head -n 1)
    [ -n "$port" ] && curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$FG_PID" 2>/dev/null || break
    sleep 0.1
done
FD0=- TH0=- FD1=- TH1=- n=0 P2_ANSWER=no
if ! curl -fsS --max-time 5 "http://127.0.0.1:${port:-1}/healthz" >/dev/null 2>&1; then
    fail "crash loop: the app never answered: $(tail -n 3 "$TMP/crash.err" | tr '\n' ' ')"
else
    deadline=$(($(date +%s) + CRASH_TIMEOUT))
    # The driver: one /panic at a time; each call waits for a live Crasher and kills it.
    (
        while kill -0 "$FG_PID" 2>/dev/null && [ ! -e "$TMP/stop-panics" ]; do
            curl -sS --max-time 30 -o /dev/null "http://127.0.0.1:$port/panic" 2>/dev/null
            sleep 0.01
        done
    ) &
    DRIVER=$!
    while [ "$(restarts)" -lt 10 ] && kill -0 "$FG_PID" 2>/dev/null && [ "$(date +%s)" -lt $deadline ]; do sleep 0.2; done
    read -r fdmin0 fdmax0 thmin0 thmax0 <<<"$(sample "$SAMPLE_S")"
    ls -l /proc/"$FG_PID"/fd >"$TMP/fd-start.txt" 2>&1
    FD0="$fdmin0..$fdmax0" TH0="$thmin0..$thmax0"
    log "after restart #$(restarts): fds $FD0, threads $TH0"
    last_log=0
    while kill -0 "$FG_PID" 2>/dev/null && [ "$(date +%s)" -lt $deadline ]; do
        n=$(restarts)
        [ "$n" -ge "$RESTARTS" ] && break
        if [ $((n / 100)) -gt $last_log ]; then
            last_log=$((n / 100))
            log "restart #$n: fds $(ls /proc/"$FG_PID"/fd 2>/dev/null | wc -l), threads $(awk '/^Threads:/ {print $2}' /proc/"$FG_PID"/status 2>/dev/null)"
        fi
        sleep 0.5
    done
    n=$(restarts)
    if [ "$n" -lt "$RESTARTS" ]; then
        fail "crash loop: only $n of $RESTARTS restarts ($(kill -0 "$FG_PID" 2>/dev/null && echo "timed out after ${CRASH_TIMEOUT}s" || echo "the deployer exited"))"
    fi
    if kill -0 "$FG_PID" 2>/dev/null; then
        read -r fdmin1 fdmax1 thmin1 thmax1 <<<"$(sample "$SAMPLE_S")"
        ls -l /proc/"$FG_PID"/fd >"$TMP/fd-end.txt" 2>&1
        FD1="$fdmin1..$fdmax1" TH1="$thmin1..$thmax1"
        log "after restart #$(restarts): fds $FD1, threads $TH1"
        [ "$fdmin1" -le $((fdmin0 + FD_SLACK)) ] && [ "$fdmax1" -le $((fdmax0 + FD_SLACK)) ] ||
            fail "descriptors grew: $FD0 at the start, $FD1 after $n restarts (diff $TMP/fd-start.txt $TMP/fd-end.txt)"
        [ "$thmin1" -le $((thmin0 + TH_SLACK)) ] && [ "$thmax1" -le $((thmax0 + TH_SLACK)) ] ||
            fail "threads grew: $TH0 at the start, $TH1 after $n restarts"
        : >"$TMP/stop-panics"
        wait "$DRIVER"
        if curl -fsS --max-time 10 "http://127.0.0.1:$port/buy?item=apple" >/dev/null 2>&1; then
            P2_ANSWER=yes
        else
            fail "crash loop: the app no longer answers after $n restarts"
        fi
    fi
    : >"$TMP/stop-panics"
    wait "$DRIVER"
fi
if kill -0 "$FG_PID" 2>/dev/null; then
    kill -INT "$FG_PID"
    rc=0
    wait "$FG_PID" || rc=$?
    [ "$rc" = 0 ] || fail "crash loop: the foreground up exited $rc after SIGINT: $(tail -n 2 "$TMP/crash.err" | tr '\n' ' ')"
else
    rc=0
    wait "$FG_PID" || rc=$?
    fail "crash loop: the foreground up ended by itself (status $rc): $(tail -n 2 "$TMP/crash.err" | tr '\n' ' ')"
fi
FG_PID=
"$WD" down --rmi "$APP2" >>"$TMP/crash-down.log" 2>&1 || fail "down --rmi $APP2 failed"
P2_S=$(($(date +%s) - T2))

# ---- 3. nothing left ----
NC=$(n_containers) NN=$(n_networks) NV=$(n_volumes) NI=$(n_images)
DANGLING=$(($(n_dangling) - DANGLING_BEFORE))
[ "$NC$NN$NV$NI" = 0000 ] || fail "left on the engine: $NC containers, $NN networks, $NV volumes, $NI images"
[ "$DANGLING" -le 0 ] || fail "$DANGLING new dangling images"
NTMP=$(find "$TMPDIR" -mindepth 1 | wc -l)
[ "$NTMP" = 0 ] || fail "left in the deployers' TMPDIR: $(find "$TMPDIR" -mindepth 1 | head -n 5 | tr '\n' ' ')"
NEWTMP=$(comm -13 <(echo "$TMP_BEFORE") <(tmp_entries) | ours | grep -c .)
[ "$NEWTMP" = 0 ] || fail "new in /tmp: $(comm -13 <(echo "$TMP_BEFORE") <(tmp_entries) | ours | head -n 5 | tr '\n' ' ')"
OTHERTMP=$(comm -13 <(echo "$TMP_BEFORE") <(tmp_entries) | grep -vcE '^/tmp/(weaver-docker-|wd-soak)')
# The state directory keeps logs on purpose (`weaver-docker logs` after down): deployer.log and
# one <time>-<pid>.log per run. Anything else (secrets, sockets) is a leftover.
SD=$XDG_STATE_HOME/weaver-docker
NLOGS=$(find "$SD" -type f -regex '.*/\(deployer\|[0-9]+-[0-9]+\)\.log' 2>/dev/null | wc -l)
EXTRA=$(find "$SD" -mindepth 1 ! -type d ! -regex '.*/\(deployer\|[0-9]+-[0-9]+\)\.log' 2>/dev/null)
EXTRA_DIRS=$(find "$SD" -mindepth 2 -type d 2>/dev/null)
NEXTRA=$(printf '%s\n%s\n' "$EXTRA" "$EXTRA_DIRS" | grep -c .)
[ "$NEXTRA" = 0 ] || fail "state directory leftovers: $(printf '%s %s' "$EXTRA" "$EXTRA_DIRS" | head -c 300)"

TOTAL_S=$(($(date +%s) - T0))
verdict=PASS
[ ${#FAILS[@]} = 0 ] || verdict=FAIL
echo "soak: $verdict cycles=$CYCLES answered=$answered left_after_down=$left_after_down" \
    "cycle_median=${CYC_MED}ms restarts=$n/$RESTARTS answered_after=$P2_ANSWER fds=$FD0->$FD1" \
    "threads=$TH0->$TH1 containers=$NC networks=$NN volumes=$NV images=$NI dangling=+$DANGLING" \
    "tmp=$((NTMP + NEWTMP)) (others $OTHERTMP) state_leftovers=$NEXTRA (logs kept: $NLOGS)" \
    "time=${TOTAL_S}s (cycles ${P1_S}s, crash loop ${P2_S}s)${FAILS:+ failures=${#FAILS[@]}}"
[ "$verdict" = PASS ]
