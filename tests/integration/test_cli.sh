#!/bin/bash
# The CLI a docker-compose user expects (issue 15), driven as a newcomer would, on the real
# engine with the real hello app: option errors in one line, up of a directory, inspect of a
# toml, misspelled sections, a bad binary path, long app names, ps columns, logs filters
# (-c by the names ps shows, --tail, --since, --until, -t, --level warning), logs -f waiting for
# the next deployment, down --rmi of an app that is not up, Ctrl-C messages, every --help
# against the README, and piped output free of ANSI codes.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/hello" ] || { not_ok "test app hello is built (run make apps)"; finish; }
APP=hello-$WD_TEST_RUN
LONG=h$(printf 'x%.0s' $(seq 1 40)) # 41 characters
on_cleanup "'$WD_BIN' down $APP >/dev/null 2>&1; '$WD_BIN' down $LONG >/dev/null 2>&1"
export XDG_STATE_HOME=$WD_TMP/state # this test's own logs and state
D=$WD_TMP/app
mkdir -p "$D"
cat >"$D/weaver.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$APPS/hello"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/hello/Counter"]]
[docker]
listeners.hello = {address = "127.0.0.1:0"}
EOF
one_line() { # NAME RC CMD...: exit status RC and exactly one line on stderr, nothing on stdout
    local name=$1 want=$2 rc=0; shift 2
    "$@" >"$WD_TMP/o.out" 2>"$WD_TMP/o.err" || rc=$?
    if [ "$rc" = "$want" ] && [ "$(wc -l <"$WD_TMP/o.err")" = 1 ] && [ ! -s "$WD_TMP/o.out" ]; then
        ok "$name -> $(cat "$WD_TMP/o.err")"
    else
        not_ok "$name: exit $rc (want $want), stderr: $(head -3 "$WD_TMP/o.err" | tr '\n' '|') stdout: $(head -2 "$WD_TMP/o.out" | tr '\n' '|')"
    fi
}
no_ansi() { ! grep -q $'\x1b\[' "$@"; }

# --- option errors: one line, one prefix, exit 2 ---
one_line "logs --bogus" 2 "$WD_BIN" logs --bogus
check "... names the option and the help" grep -q "^weaver-docker: logs: unknown option '--bogus' (see 'weaver-docker logs --help')$" "$WD_TMP/o.err"
one_line "logs -l (no value)" 2 "$WD_BIN" logs -l
check "... says the value is missing" grep -q "missing value for option '-l'" "$WD_TMP/o.err"
one_line "ps -z" 2 "$WD_BIN" ps -z
one_line "down --nope" 2 "$WD_BIN" down --nope
one_line "compose --nope" 2 "$WD_BIN" compose --nope
one_line "weaver-docker --nope" 2 "$WD_BIN" --nope
one_line "logs --level loud" 2 "$WD_BIN" logs --level loud "$APP"
one_line "logs --since yesterday" 2 "$WD_BIN" logs --since yesterday "$APP"
one_line "logs --tail -3" 2 "$WD_BIN" logs --tail -3 "$APP"
one_line "ps --format yaml" 2 "$WD_BIN" ps --format yaml

# --- inputs: a directory means its weaver.toml; bad ones say where and what ---
mkdir -p "$WD_TMP/empty"
one_line "up -d of a directory without weaver.toml" 1 "$WD_BIN" up -d "$WD_TMP/empty"
check "... names the directory" grep -q "$WD_TMP/empty has no weaver.toml" "$WD_TMP/o.err"
pushd "$WD_TMP/empty" >/dev/null
one_line "up -d with no argument, no weaver.toml here" 1 "$WD_BIN" up -d
popd >/dev/null
printf '[serviceweaver]\nname = "x"\nbinary = "../nope/app"\n' >"$WD_TMP/empty/weaver.toml"
one_line "a bad binary path" 1 "$WD_BIN" up -d "$WD_TMP/empty/weaver.toml"
check "... names file, line and key, and that it is relative to the toml" \
    grep -q "weaver.toml:3: \[serviceweaver\] binary \"../nope/app\" is $WD_TMP/nope/app, which does not exist (a relative binary is relative to the toml's directory" "$WD_TMP/o.err"
printf '[serviceweaver]\nbinary = "%s"\n[dokcer]\nlisteners.hello = {address = "127.0.0.1:0"}\n' "$APPS/hello" >"$WD_TMP/typo.toml"
one_line "a misspelled [docker] section" 2 "$WD_BIN" up -d "$WD_TMP/typo.toml"
check "... says which and what was meant" grep -q 'typo.toml:3: unknown section \[dokcer\]; did you mean \[docker\]?' "$WD_TMP/o.err"
printf '[serviceweaver]\nname = "%s"\nbinary = "%s"\n' "$LONG" "$APPS/hello" >"$WD_TMP/long.toml"
one_line "a 41-character app name" 2 "$WD_BIN" up -d "$WD_TMP/long.toml"
check "... says the rule is the length" grep -q 'is 41 characters long, at most 40' "$WD_TMP/o.err"
check "inspect of a toml shows the binary it names" bash -c "'$WD_BIN' inspect '$D/weaver.toml' | grep -q 'example.com/hello/Reverser'"
check "inspect of a directory too" bash -c "'$WD_BIN' inspect '$D' | grep -q '^listeners:'"

# --- up of a directory, ps ---
check "up -d DIR uses DIR/weaver.toml" bash -c "'$WD_BIN' up -d '$D' >/dev/null"
main_health() { "$WD_BIN" ps --json "$APP" | python3 -c "import json,sys; print([r['health'] for r in json.load(sys.stdin)[0]['replicas'] if r['group']=='weaver.Main'][0])"; }
for _ in $(seq 1 100); do h=$(main_health); [ "$h" != starting ] && break; sleep 0.1; done
check "ps: Main is healthy as soon as the deployer saw it, saying the engine's check lags ($h)" \
    test "$h" = "healthy (engine: starting)"
"$WD_BIN" ps "$APP" >"$WD_TMP/ps.txt" 2>&1
check "ps: piped output has no ANSI codes" no_ansi "$WD_TMP/ps.txt"
# columns line up: every row's STATE column starts where the header's does
check "ps: columns line up under the header" python3 - "$WD_TMP/ps.txt" <<'EOF'
import sys
rows = [l.rstrip("\n") for l in open(sys.argv[1]) if l.startswith("  ") and not l.startswith("  listener")]
col = rows[0].index("STATE")
assert len(rows) >= 3, rows
for r in rows[1:]:
    assert r[col - 2:col] == "  " and r[col] != " ", (r, col)
EOF
check "ps: no trailing blanks" bash -c "! grep -q ' \$' '$WD_TMP/ps.txt'"
check "ps -a works as docker compose users type it" bash -c "'$WD_BIN' ps -a $APP | grep -q 'weaver.Main'"
check "ps --format json is ps --json" bash -c "'$WD_BIN' ps --format json $APP | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[0][\"app\"]==\"$APP\"'"
port=$("$WD_BIN" ps --json "$APP" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['listeners']['hello'].rsplit(':',1)[1])")
for n in World Weaver; do curl -fsS --max-time 5 "http://127.0.0.1:$port/hello?name=$n" >/dev/null; done
wait_for bash -c "'$WD_BIN' logs $APP | grep -q 'out=\"revaeW\"'"

# --- logs: -c by the names ps and the log lines show, in any case ---
"$WD_BIN" logs "$APP" >"$WD_TMP/all.txt" 2>&1
check "logs: piped output has no ANSI codes" no_ansi "$WD_TMP/all.txt"
for c in hello.Reverser reverser REVERSER example.com/hello/Reverser hello-reverser; do
    check "logs -c $c finds the Reverser's lines" bash -c "'$WD_BIN' logs -c '$c' $APP | grep -q 'reversed in='"
done
check "logs -c weaver.Main: only Main's lines" bash -c "out=\$('$WD_BIN' logs -c weaver.Main $APP); ! echo \"\$out\" | grep -q 'reversed in='"
check "logs --tail 1: one entry, the last one" bash -c "[ \"\$('$WD_BIN' logs --tail 1 -c reverser $APP | wc -l)\" = 1 ] && '$WD_BIN' logs -n 1 -c reverser $APP | grep -q 'out=\"revaeW\"'"
check "logs --since 10m has the entries" bash -c "'$WD_BIN' logs --since 10m $APP | grep -q 'reversed in='"
check "logs --until 10m (before they were written) has none" bash -c "[ -z \"\$('$WD_BIN' logs --until 10m $APP)\" ]"
check "logs --since with a time in the future has none" bash -c "[ -z \"\$('$WD_BIN' logs --since 2099-01-01T00:00:00 $APP)\" ]"
check "logs -t starts lines with the date" bash -c "'$WD_BIN' logs -t -c reverser $APP | head -1 | grep -q '^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T'"
check "logs --level warning is accepted (no info lines)" bash -c "! '$WD_BIN' logs --level warning $APP | grep -q '^I'"
check "logs --system: in time order" bash -c "'$WD_BIN' logs --system --json $APP | python3 -c '
import json,sys
t=[json.loads(l)[\"time\"] for l in sys.stdin]
assert t == sorted(t), \"out of order\"'"
if [ "$("$WD_BIN" ps --json | python3 -c 'import json,sys; print(len({d["app"] for d in json.load(sys.stdin)}))')" = 1 ]; then
    check "logs with no APP picks the one that is up" bash -c "'$WD_BIN' logs | grep -q 'reversed in='"
else # someone else's app is up on this engine too
    check "logs with no APP, other apps up: ours, or 'name one' if theirs have logs here" \
        bash -c "out=\$('$WD_BIN' logs 2>&1); echo \"\$out\" | grep -q 'reversed in=' || echo \"\$out\" | grep -q 'several apps are up (.*$APP.*); name one'"
fi

# --- down, then logs -f waits for the next deployment ---
check "down" bash -c "'$WD_BIN' down $APP >/dev/null"
check "logs after down reads the last deployment's file" bash -c "'$WD_BIN' logs $APP | grep -q 'reversed in='"
"$WD_BIN" logs -f -c reverser "$APP" >"$WD_TMP/follow.out" 2>"$WD_TMP/follow.err" &
fpid=$!
check "logs -f of an app that is not up says it waits" wait_for grep -q 'is not up; waiting for its next deployment' "$WD_TMP/follow.err"
"$WD_BIN" up -d "$D" >/dev/null 2>&1
port=$("$WD_BIN" ps --json "$APP" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['listeners']['hello'].rsplit(':',1)[1])")
curl -fsS --max-time 5 "http://127.0.0.1:$port/hello?name=Again" >/dev/null
check "logs -f follows the next deployment" wait_for grep -q 'out="niagA"' "$WD_TMP/follow.out"
"$WD_BIN" down "$APP" >/dev/null 2>&1
check "logs -f ends with that deployment" wait_for bash -c "! kill -0 $fpid 2>/dev/null"
kill "$fpid" 2>/dev/null

# --- down --rmi of an app that is not up: says so first ---
"$WD_BIN" down --rmi "$APP" >"$WD_TMP/rmi.out" 2>&1
check "down --rmi of an app that is not up: 'not up' comes first" \
    bash -c "head -1 '$WD_TMP/rmi.out' | grep -q '^$APP is not up$' && grep -q '^removed [0-9]* image' '$WD_TMP/rmi.out'"

# --- foreground up: the first Ctrl-C says a second one kills ---
"$WD_BIN" up "$D" >"$WD_TMP/fg.out" 2>"$WD_TMP/fg.err" &
up=$!
wait_for grep -q 'listener "hello" at' "$WD_TMP/fg.err"
kill -INT "$up"
check "Ctrl-C: says a second Ctrl-C kills at once" wait_for grep -q "stopping $APP (Ctrl-C again to kill at once)" "$WD_TMP/fg.err"
wait "$up"
check "foreground output piped: no ANSI codes" no_ansi "$WD_TMP/fg.out" "$WD_TMP/fg.err"
check "no grace-timer warning on a clean stop" bash -c "! grep -q 'did not stop within' '$WD_TMP/fg.err'"

# --- the process runtime: -d, ps, logs and down find it like a container deployment ---
L=$XDG_STATE_HOME/weaver-docker/$APP
for i in $(seq 10 34); do echo '{}' >"$L/15000000$i-1.log"; touch -d "2020-01-01 00:00:$i" "$L/15000000$i-1.log"; done
check "up -d --runtime=process" bash -c "'$WD_BIN' up -d --runtime=process '$D' >'$WD_TMP/p.out' 2>&1"
check "ps shows the process deployment and its 2 weavelets" \
    wait_for bash -c "'$WD_BIN' ps $APP >'$WD_TMP/pps.txt' 2>&1; grep -q 'processes  deployer running' '$WD_TMP/pps.txt' && [ \$(grep -c ' pid [0-9]* *running' '$WD_TMP/pps.txt') = 2 ]"
check "old deployment logs are pruned (20 kept, the newest)" \
    bash -c "[ \$(ls '$L' | grep -v deployer.log | grep -c '\.log\$') = 20 ] && [ ! -e '$L/1500000010-1.log' ] && [ -e '$L/1500000034-1.log' ]"
pport=$("$WD_BIN" ps --json "$APP" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['listeners']['hello'].rsplit(':',1)[1])")
check "the process deployment answers" bash -c "curl -fsS --max-time 5 'http://127.0.0.1:$pport/hello?name=Proc' | grep -q corP"
check "logs of the process deployment" wait_for bash -c "'$WD_BIN' logs -c reverser $APP | grep -q 'out=\"corP\"'"
rc=0; "$WD_BIN" up -d --runtime=process "$D" >"$WD_TMP/o.out" 2>"$WD_TMP/o.err" || rc=$?
check "a second up of the same app: nothing to do, exit 0" [ "$rc" = 0 ]
check "... saying it is up to date, in one line" bash -c "grep -q 'is up to date (deployment' '$WD_TMP/o.out' && [ \$(cat '$WD_TMP/o.out' '$WD_TMP/o.err' | wc -l) = 1 ]"
ppid=$("$WD_BIN" ps --json "$APP" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['deployer_pid'])")
check "down stops the process deployment" bash -c "'$WD_BIN' down $APP | grep -q 'removed (processes)'"
check "... its deployer and weavelets are gone" wait_for bash -c "! kill -0 $ppid 2>/dev/null && ! pgrep -f '^$APPS/hello' >/dev/null"
check "... and ps says it is not up" bash -c "'$WD_BIN' ps $APP | grep -q '^$APP is not up\$'"

# --- every command's --help: exits 0, aligned, and listed in the README ---
for c in up down ps logs metrics scale rollout profile dashboard compose inspect version; do
    "$WD_BIN" "$c" --help >"$WD_TMP/h.txt" 2>&1
    check "$c --help exits 0 and starts with Usage" grep -q "^Usage: weaver-docker $c" "$WD_TMP/h.txt"
    check "$c is in the README's command list" grep -q "weaver-docker $c" "$WD_ROOT/README.md"
    check "$c --help: option descriptions start in one column" python3 - "$WD_TMP/h.txt" <<'EOF'
import re, sys
cols = set()
for l in open(sys.argv[1]):
    m = re.match(r"^  (-\S.*?\S)(\s{2,})(\S)", l)
    if m:
        cols.add(m.start(3))
assert len(cols) <= 1, cols
EOF
done
check "the usage lists every command" bash -c "'$WD_BIN' --help | grep -q '^  compose' && '$WD_BIN' --help | grep -q '^  inspect'"
finish
