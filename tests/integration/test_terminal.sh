#!/bin/bash
# A paused terminal never freezes the app (issue 16). A foreground `up` of the shop app whose
# stdout is a pipe nobody reads (what `up | less` is while less is paused), Main logging
# 100,000 lines: requests through the listener keep answering, a killed replica is replaced
# meanwhile, the log file holds every line, `logs -f` shows them in order and ends with the
# deployment, Ctrl-C stops everything, and once the pipe is read the skipped lines are
# announced by one marker.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
APP=term-$WD_TEST_RUN
N=100000
export XDG_STATE_HOME=$WD_TMP/state
on_cleanup "'$WD_BIN' down $APP"
cat >"$WD_TMP/w.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$APPS/shop"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
["example.com/shop/Cart"]
Store = "s"
Max = 100000
EOF
FIFO=$WD_TMP/out.fifo
mkfifo "$FIFO"
sleep 100000 <"$FIFO" & # holds the read end and never reads
holder=$!
on_cleanup "kill $holder"
"$WD_BIN" up "$WD_TMP/w.toml" >"$FIFO" 2>"$WD_TMP/up.err" &
UP=$!
check "up serves with its stdout unread" wait_for grep -q 'listener "shop" at' "$WD_TMP/up.err"
port=$(sed -n 's/.*listener "shop" at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up.err" | head -1)
get() { curl -fsS --max-time 10 "http://127.0.0.1:$port$1"; }
check "the app answers" wait_for get /healthz
check "a cart call works" wait_for get '/buy?item=apple'

"$WD_BIN" logs -f -c weaver.Main "$APP" >"$WD_TMP/follow.txt" 2>"$WD_TMP/follow.err" &
follower=$!
curl -fsS --max-time 300 "http://127.0.0.1:$port/flood?n=$N" >"$WD_TMP/flood.out" 2>&1 &
flood=$!
# while Main floods: requests keep answering, and a killed Cart replica is replaced
fails=0
for i in $(seq 1 40); do get /healthz >/dev/null || fails=$((fails + 1)); done
cart=$(docker ps -q --filter "label=org.weaver-docker.app=$APP" --filter "label=org.weaver-docker.group=shop.Cart")
[ -n "$cart" ] && docker kill "$cart" >/dev/null
check "during the flood: a killed Cart replica is replaced and called again" \
    wait_for bash -c "[ -n \"\$(docker ps -q --filter label=org.weaver-docker.app=$APP --filter label=org.weaver-docker.group=shop.Cart | grep -v '^$cart')\" ] && curl -fsS --max-time 10 'http://127.0.0.1:$port/buy?item=pear' | grep -q 'bought pear'"
for i in $(seq 1 40); do get /healthz >/dev/null || fails=$((fails + 1)); done
check "during the flood: 80 requests through the listener, $fails failed" test "$fails" = 0
wait "$flood"
check "the flood request completed ($(cat "$WD_TMP/flood.out"))" grep -q "logged $N lines" "$WD_TMP/flood.out"
LOG=$(ls "$XDG_STATE_HOME/weaver-docker/$APP/"*.log | grep -v deployer.log | head -1)
count() { grep -c '"msg":"flood"' "$LOG"; }
check "the log file holds all $N lines" wait_for bash -c "[ \$(grep -c '\"msg\":\"flood\"' '$LOG') = $N ]"
check "... in order" python3 - "$LOG" "$N" <<'EOF'
import json, sys
seen = [int(json.loads(l)["attrs"]["i"]) for l in open(sys.argv[1]) if '"msg":"flood"' in l]
assert seen == list(range(int(sys.argv[2]))), "out of order or missing"
EOF
check "after the flood the app still answers" bash -c "curl -fsS --max-time 10 http://127.0.0.1:$port/healthz >/dev/null"
check "logs -f shows the $N lines" wait_for bash -c "[ \$(grep -c ' flood i=' '$WD_TMP/follow.txt') = $N ]"
check "... in order" python3 - "$WD_TMP/follow.txt" "$N" <<'EOF'
import re, sys
seen = [int(m.group(1)) for l in open(sys.argv[1]) for m in [re.search(r" flood i=\"?(\d+)", l)] if m]
assert seen == list(range(int(sys.argv[2]))), "out of order or missing"
EOF
# a second reader drains the pipe for a moment: what was kept, and one marker for the rest
check "the pipe, read at last, says how many lines it skipped and where they are" \
    bash -c "timeout 3 cat '$FIFO' >'$WD_TMP/drained.txt' 2>/dev/null; grep -q 'lines not shown (all are in the log file: weaver-docker logs $APP)' '$WD_TMP/drained.txt'"
# paused again (nobody reads), with output waiting: Ctrl-C still stops everything in time
check "a second flood with the pipe unread" bash -c "curl -fsS --max-time 120 'http://127.0.0.1:$port/flood?n=20000' | grep -q 'logged 20000'"
kill -INT "$UP"
rc=0
for _ in $(seq 1 300); do kill -0 "$UP" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$UP" 2>/dev/null; then
    not_ok "Ctrl-C with the terminal paused: up ends within 30 s"
    kill -9 "$UP"
else
    wait "$UP" || rc=$?
    check "Ctrl-C with the terminal paused: up ends, exit 0" test "$rc" = 0
fi
check "logs -f ends with the deployment" wait_for bash -c "! kill -0 $follower 2>/dev/null"
check "nothing of the app is left" \
    bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP)\" ] && [ -z \"\$(docker network ls -q --filter label=org.weaver-docker.app=$APP)\" ]"
finish
