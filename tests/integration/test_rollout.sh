#!/bin/bash
# Rollouts (issue 12): `up` of a changed app over a running one. tests/apps/versioned answers
# "main=vN stamp=vN" (Main and Stamp, two groups, each reporting its own version). Under a bounded
# request loop through the listener:
#  - v1 -> v2 (containers, then processes): 0 failed requests, every answer all-v1 or all-v2,
#    then only v2, and nothing of v1 is left; the same up again: "up to date", exit 0;
#  - rollout = "4s": the share of v2 answers rises (request buckets, not time);
#  - a v2 that crashes at start, and one whose listener never answers: up exits != 0 with the
#    reason and v2's last log lines, v1 served every request, nothing of v2 is left;
#  - `rollout --abort` during a slow rollout: the same; meanwhile ps and logs show both versions;
#  - the new deployer killed (SIGKILL) mid-rollout: v1 serves every request again; `down`
#    removes both versions; the next `up` works.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
for v in v1 v2 v2crash v2deaf; do
    [ -x "$APPS/versioned-$v" ] || { not_ok "test app versioned-$v is built (run make apps)"; finish; }
done
export XDG_STATE_HOME=$WD_TMP/state
APP=roll-$WD_TEST_RUN
on_cleanup "'$WD_BIN' down $APP"

# toml NAME BINARY [EXTRA-SERVICEWEAVER-LINE] [EXTRA-DOCKER-LINE]
toml() {
    cat >"$WD_TMP/$1.toml" <<TOML
[serviceweaver]
name = "$APP"
binary = "$APPS/$2"
${3:-}
[docker]
listeners.web = {address = "127.0.0.1:0"}
${4:-}
TOML
}
toml v1 versioned-v1
toml v2 versioned-v2
toml v2slow versioned-v2 'rollout = "4s"'
toml v2long versioned-v2 'rollout = "60s"'
toml v2crash versioned-v2crash
toml v2deaf versioned-v2deaf '' 'rollout_timeout = "6s"'

# the bounded loop: requests through the listener until $WD_TMP/stop.$1 exists (at most 3000),
# one answer (or FAIL) per line in $WD_TMP/ans.$1
loop_start() { # TAG PORT
    rm -f "$WD_TMP/stop.$1" "$WD_TMP/ans.$1"
    (
        for i in $(seq 3000); do
            [ -e "$WD_TMP/stop.$1" ] && break
            curl -fsS --max-time 10 "http://127.0.0.1:$2/" >>"$WD_TMP/ans.$1" 2>>"$WD_TMP/loop.err" ||
                echo FAIL >>"$WD_TMP/ans.$1"
            sleep 0.01
        done
    ) &
    LOOP=$!
}
loop_stop() { touch "$WD_TMP/stop.$1"; wait "$LOOP"; }
count() { grep -c -- "$2" "$WD_TMP/ans.$1" || true; } # TAG PATTERN
port_of() { sed -n 's/.*listener web at 127.0.0.1:\([0-9]*\).*/\1/p' "$1" | head -1; }
deployments() { "$WD_BIN" ps --json "$APP" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
no_v2_left() { # RUNTIME: one deployment, and (docker) only its containers and network
    [ "$(deployments)" = 1 ] || return 1
    [ "$1" = process ] && return 0
    [ "$(docker network ls -q --filter label=org.weaver-docker.app=$APP | wc -l)" = 1 ] &&
        [ -z "$(docker ps -aq --filter label=org.weaver-docker.app=$APP --filter name=-$v2dep)" ]
}

# --- v1 -> v2, zero failures, never mixed ---
rollover() { # RUNTIME
    local rt=$1
    "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/v1.toml" >"$WD_TMP/up1.$rt" 2>&1 ||
        { not_ok "$rt: up -d v1"; cat "$WD_TMP/up1.$rt"; return; }
    local port v1dep
    port=$(port_of "$WD_TMP/up1.$rt")
    v1dep=$("$WD_BIN" ps --json "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deployment"])')
    check "$rt: v1 answers" bash -c "curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v1 stamp=v1'"
    loop_start "$rt" "$port"
    sleep 1
    "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/v2.toml" >"$WD_TMP/up2.$rt" 2>&1
    local rc=$? at_return
    at_return=$(wc -l <"$WD_TMP/ans.$rt")
    check "$rt: up -d of v2 over v1 exits 0" [ "$rc" = 0 ]
    check "$rt: ... and says it rolled over" grep -q "rolled over from deployment ${v1dep:0:8}" "$WD_TMP/up2.$rt"
    check "$rt: ... keeping the listener's address" grep -q "listener web at 127.0.0.1:$port" "$WD_TMP/up2.$rt"
    sleep 1.5
    loop_stop "$rt"
    local total v1 v2 failed mixed
    total=$(wc -l <"$WD_TMP/ans.$rt")
    v1=$(count "$rt" '^main=v1 stamp=v1$')
    v2=$(count "$rt" '^main=v2 stamp=v2$')
    failed=$(count "$rt" '^FAIL$')
    mixed=$((total - v1 - v2 - failed))
    diag "$rt: $total requests: $v1 all-v1, $v2 all-v2, $failed failed, $mixed other"
    check "$rt: no request failed during the rollout" [ "$failed" = 0 ]
    check "$rt: every answer is all-v1 or all-v2 (never mixed)" [ "$mixed" = 0 ]
    check "$rt: both versions answered during the loop" [ "$v1" -gt 0 ] && [ "$v2" -gt 0 ]
    # rollout = 0: once up -d returned, every new connection is v2's (a request in flight then
    # may still be v1's: one line of margin)
    check "$rt: after the rollout only v2 answers (every answer after up -d returned)" \
        bash -c "! tail -n +$((at_return + 2)) '$WD_TMP/ans.$rt' | grep -vqx 'main=v2 stamp=v2'"
    check "$rt: ... and 10 more requests now: all v2" \
        bash -c "for i in 1 2 3 4 5 6 7 8 9 10; do curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v2 stamp=v2' || exit 1; done"
    check "$rt: v1's deployment is gone (ps shows one)" wait_for bash -c "[ \"\$('$WD_BIN' ps --json $APP | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 1 ]"
    if [ "$rt" = docker ]; then
        check "docker: v1's containers are gone" wait_for bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.deployment=$v1dep)\" ]"
        check "docker: v1's network is gone" wait_for bash -c "[ -z \"\$(docker network ls -q --filter label=org.weaver-docker.deployment=$v1dep)\" ]"
    else
        check "process: v1's weavelets are gone" wait_for bash -c "! pgrep -f '$APPS/versioned-v[1]' >/dev/null"
    fi
    "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/v2.toml" >"$WD_TMP/up3.$rt" 2>&1
    rc=$?
    check "$rt: up of the same v2 again: exit 0, 'up to date'" [ "$rc" = 0 ] && grep -q "is up to date" "$WD_TMP/up3.$rt"
    # a second rollout, back to v1: the socket the last one adopted moves on (the port stays)
    loop_start "back.$rt" "$port"
    sleep 0.5
    "$WD_BIN" up -d --runtime="$rt" "$WD_TMP/v1.toml" >"$WD_TMP/up4.$rt" 2>&1
    rc=$?
    sleep 1
    loop_stop "back.$rt"
    check "$rt: a second rollout (v2 -> v1) at the same address" bash -c "[ $rc = 0 ] && grep -q 'listener web at 127.0.0.1:$port' '$WD_TMP/up4.$rt'"
    check "$rt: ... no request failed ($(wc -l <"$WD_TMP/ans.back.$rt") requests)" [ "$(count "back.$rt" '^FAIL$')" = 0 ]
    check "$rt: ... and v1 answers after it" bash -c "sleep 1; curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v1 stamp=v1'"
    check "$rt: down" "$WD_BIN" down "$APP"
}
rollover docker
rollover process

# --- a rollout that changes the runtime: processes -> containers ---
"$WD_BIN" up -d --runtime=process "$WD_TMP/v1.toml" >"$WD_TMP/x1" 2>&1 || { not_ok "runtime: up -d v1 (processes)"; cat "$WD_TMP/x1"; }
port=$(port_of "$WD_TMP/x1")
loop_start runtime "$port"
sleep 0.5
"$WD_BIN" up -d "$WD_TMP/v2.toml" >"$WD_TMP/x2" 2>&1
check "runtime: up -d of v2 in containers over v1 as processes rolls over" grep -q "rolled over from deployment" "$WD_TMP/x2"
sleep 1
loop_stop runtime
check "runtime: no request failed ($(wc -l <"$WD_TMP/ans.runtime") requests)" [ "$(count runtime '^FAIL$')" = 0 ]
check "runtime: then v2 answers" bash -c "curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v2 stamp=v2'"
check "runtime: ... and only the deployment in containers is left" wait_for bash -c "[ \"\$('$WD_BIN' ps --json $APP | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d), d[0][\"runtime\"])')\" = '1 docker' ]"
check "runtime: down" "$WD_BIN" down "$APP"

# --- rollout = "4s": the share of v2 rises ---
"$WD_BIN" up -d "$WD_TMP/v1.toml" >"$WD_TMP/s1" 2>&1 || { not_ok "slow: up -d v1"; cat "$WD_TMP/s1"; }
port=$(port_of "$WD_TMP/s1")
loop_start slow "$port"
"$WD_BIN" up "$WD_TMP/v2slow.toml" >"$WD_TMP/s2" 2>&1 &
UP=$!
wait_for grep -q "now runs deployment" "$WD_TMP/s2"
sleep 1
loop_stop slow
kill -INT $UP 2>/dev/null
wait $UP
check "slow: the shift went in steps (25, 50, 75, 100 %)" \
    bash -c "grep -q '25 % of new connections' '$WD_TMP/s2' && grep -q '50 %' '$WD_TMP/s2' && grep -q '75 %' '$WD_TMP/s2' && grep -q '100 %' '$WD_TMP/s2'"
check "slow: no request failed" [ "$(count slow '^FAIL$')" = 0 ]
# the window from the first v2 answer to the last v1 answer, in 4 buckets of requests
shares=$(python3 - "$WD_TMP/ans.slow" <<'PY'
import sys
a = [l.strip() for l in open(sys.argv[1])]
v2 = [i for i, l in enumerate(a) if l == "main=v2 stamp=v2"]
v1 = [i for i, l in enumerate(a) if l == "main=v1 stamp=v1"]
lo, hi = v2[0], v1[-1]
w = a[lo:hi + 1]
n = len(w)
print(" ".join("%.2f" % (sum(1 for l in w[k * n // 4:(k + 1) * n // 4] if l.endswith("v2")) /
                         max(1, len(w[k * n // 4:(k + 1) * n // 4]))) for k in range(4)), n)
PY
)
diag "slow: v2 share in 4 request buckets of the shift window (and its size): $shares"
check "slow: the v2 share rises over the window (first bucket < last, none falls by much)" \
    python3 -c 'import sys; s=[float(x) for x in sys.argv[1:5]]; sys.exit(0 if s[0] < s[3] and all(s[i+1] >= s[i]-0.15 for i in range(3)) and int(sys.argv[5]) >= 20 else 1)' $shares
check "slow: down" "$WD_BIN" down "$APP"

# --- a v2 that fails: v1 serves everything, nothing of v2 is left ---
failing() { # TAG TOML REASON-PATTERN LOG-PATTERN
    local tag=$1
    "$WD_BIN" up -d "$WD_TMP/v1.toml" >"$WD_TMP/f1.$tag" 2>&1 || { not_ok "$tag: up -d v1"; cat "$WD_TMP/f1.$tag"; return; }
    local port
    port=$(port_of "$WD_TMP/f1.$tag")
    loop_start "$tag" "$port"
    "$WD_BIN" up -d "$WD_TMP/$2.toml" >"$WD_TMP/f2.$tag" 2>&1
    local rc=$?
    sleep 0.5
    loop_stop "$tag"
    check "$tag: up -d of the bad v2 exits != 0" [ "$rc" != 0 ]
    check "$tag: ... saying the rollout failed and why" grep -Eq "rollout of $APP to deployment [0-9a-f]{8} failed: .*$3" "$WD_TMP/f2.$tag"
    check "$tag: ... with the new version's last log lines" grep -q "$4" "$WD_TMP/f2.$tag"
    local total v1
    total=$(wc -l <"$WD_TMP/ans.$tag")
    v1=$(count "$tag" '^main=v1 stamp=v1$')
    diag "$tag: $total requests, $v1 all-v1"
    check "$tag: v1 served every request ($total)" [ "$total" -gt 0 ] && [ "$v1" = "$total" ]
    check "$tag: nothing of v2 is left (one deployment, one network)" wait_for bash -c "[ \"\$('$WD_BIN' ps --json $APP | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 1 ] && [ \"\$(docker network ls -q --filter label=org.weaver-docker.app=$APP | wc -l)\" = 1 ] && [ \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP | wc -l)\" = 2 ]"
    check "$tag: v1 still answers" bash -c "curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v1 stamp=v1'"
    check "$tag: down" "$WD_BIN" down "$APP"
}
failing crash v2crash "group .* of the new version .*exited" "crash mode: exiting"
failing deaf v2deaf "listener web .*did not answer.*rollout_timeout" "deaf mode: not serving"

# --- rollout --abort ---
"$WD_BIN" up -d "$WD_TMP/v1.toml" >"$WD_TMP/a1" 2>&1 || { not_ok "abort: up -d v1"; cat "$WD_TMP/a1"; }
port=$(port_of "$WD_TMP/a1")
loop_start abort "$port"
"$WD_BIN" up "$WD_TMP/v2long.toml" >"$WD_TMP/a2" 2>&1 &
UP=$!
check "abort: the rollout shifts" wait_for grep -q "% of new connections go to" "$WD_TMP/a2"
"$WD_BIN" ps "$APP" >"$WD_TMP/a.ps" 2>&1
check "abort: ps shows both versions and the share" bash -c "grep -q 'rollout: new version' '$WD_TMP/a.ps' && grep -q 'rollout: old version' '$WD_TMP/a.ps'"
"$WD_BIN" logs "$APP" >"$WD_TMP/a.logs" 2>&1
check "abort: logs shows both versions' entries, each after its [deployment]" \
    bash -c "[ \"\$(grep -oE '^\[[0-9a-f]{8}\]' '$WD_TMP/a.logs' | sort -u | wc -l)\" = 2 ]"
check "abort: rollout APP shows it" bash -c "'$WD_BIN' rollout $APP | grep -q 'shifting, the new version takes'"
check "abort: rollout --abort" "$WD_BIN" rollout "$APP" --abort
wait $UP
rc=$?
check "abort: the up of v2 exits 1" [ "$rc" = 1 ]
check "abort: ... saying it was aborted" grep -q "failed: aborted" "$WD_TMP/a2"
sleep 0.5
loop_stop abort
total=$(wc -l <"$WD_TMP/ans.abort")
check "abort: no request failed ($total)" [ "$(count abort '^FAIL$')" = 0 ]
check "abort: nothing of v2 is left" wait_for bash -c "[ \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP | wc -l)\" = 2 ]"
check "abort: only v1 answers now" bash -c "for i in 1 2 3 4 5 6 7 8 9 10; do curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v1 stamp=v1' || exit 1; done"
"$WD_BIN" rollout "$APP" --abort >"$WD_TMP/a3" 2>&1
check "abort: --abort with no rollout under way: exit != 0, one line" [ $? != 0 ] && [ "$(wc -l <"$WD_TMP/a3")" = 1 ]

# --- the new deployer killed mid-rollout ---
loop_start kill "$port"
"$WD_BIN" up "$WD_TMP/v2long.toml" >"$WD_TMP/k2" 2>&1 &
UP=$!
check "kill: the rollout shifts" wait_for grep -q "% of new connections go to" "$WD_TMP/k2"
kill -KILL $UP
wait $UP 2>/dev/null
check "kill: the old deployer takes every connection back" wait_for grep -q "serves every new connection again" "$(ls -t "$XDG_STATE_HOME"/weaver-docker/$APP/deployer.log)"
sleep 1
rm -f "$WD_TMP/ans.kill2"
for i in $(seq 20); do curl -fsS --max-time 5 "http://127.0.0.1:$port/" >>"$WD_TMP/ans.kill2" 2>&1 || echo FAIL >>"$WD_TMP/ans.kill2"; done
check "kill: then only v1 answers, none fails (20 requests)" [ "$(grep -cx 'main=v1 stamp=v1' "$WD_TMP/ans.kill2")" = 20 ]
loop_stop kill
diag "kill: during the kill: $(wc -l <"$WD_TMP/ans.kill") requests, $(count kill '^FAIL$') failed"
check "kill: down removes both versions" "$WD_BIN" down "$APP"
check "kill: no container or network of the app is left" bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP)\" ] && [ -z \"\$(docker network ls -q --filter label=org.weaver-docker.app=$APP)\" ]"
"$WD_BIN" up -d "$WD_TMP/v2.toml" >"$WD_TMP/k3" 2>&1
check "kill: the next up works" [ $? = 0 ]
port=$(port_of "$WD_TMP/k3")
check "kill: ... and answers v2" bash -c "curl -fsS http://127.0.0.1:$port/ | grep -qx 'main=v2 stamp=v2'"
check "kill: down" "$WD_BIN" down "$APP"
finish
