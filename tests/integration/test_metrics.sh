#!/bin/bash
# Metrics of a running app (issue 11): the deployer polls GetMetrics from every replica; under a
# known load the counts per method are exact (calls, errors), latency buckets sum to the count,
# the app's own counter, gauge and histogram read what the app did; the same numbers through
# `metrics --json`, the table, and a real Prometheus (Debian's) scraping [docker] metrics. A
# killed replica's counts are kept. The control socket is 0600; bad input gets one line.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
command -v prometheus >/dev/null || { not_ok "prometheus is installed (scripts/deps.sh --test)"; finish; }
export XDG_STATE_HOME=$WD_TMP/state
APP=met-$WD_TEST_RUN
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MPORT=$(free_port)
write_toml() { # FILE METRICS-ADDRESS
    cat >"$1" <<TOML
[serviceweaver]
name = "$APP"
binary = "$APPS/shop"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
metrics = "$2"
["example.com/shop/Cart"]
Store = "s"
Max = 10
TOML
}
write_toml "$WD_TMP/w.toml" "127.0.0.1:$MPORT"
on_cleanup "'$WD_BIN' down $APP"
check "up -d with [docker] metrics" "$WD_BIN" up -d "$WD_TMP/w.toml" >"$WD_TMP/up.out" 2>&1 || cat "$WD_TMP/up.out"
port=$(sed -n 's/.*listener shop at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up.out")
get() { curl -fsS --max-time 10 "http://127.0.0.1:$port$1"; }

# the load: 12 buys (Max = 10 per Cart replica: 10 succeed, 2 fail), 5 prices, one flood of 50
ok_buys=0
for i in $(seq 12); do get "/buy?item=apple" >/dev/null 2>&1 && ok_buys=$((ok_buys + 1)); done
check "10 of 12 buys succeed (the cart holds 10)" [ "$ok_buys" = 10 ]
for i in $(seq 5); do get "/price?item=pear" >/dev/null; done
get "/flood?n=50" >/dev/null

# value NAME COMPONENT METHOD FIELD: from metrics --json, the one entry with those labels
value() {
    "$WD_BIN" metrics --json "$APP" "$1" | python3 -c '
import json, sys
name, comp, method, field = sys.argv[1:]
m = [x for x in json.load(sys.stdin)["metrics"] if x["name"] == name
     and (comp == "-" or x["labels"].get("component") == comp)
     and (method == "-" or x["labels"].get("method") == method)]
if len(m) != 1: print("entries=%d" % len(m)); sys.exit()
x = m[0]
if field == "buckets": print(sum(x["counts"]) == x["count"] and len(x["counts"]) == len(x["bounds"]) + 1)
else: print(("%.6g" % x[field]) if isinstance(x[field], float) else x[field])' "$@"
}
CART=example.com/shop/Cart INV=example.com/shop/Inventory PRICER=example.com/shop/Pricer
is() { [ "$(value "${@:1:4}")" = "$5" ]; }
check "metrics --json: Cart.Add called 12 times" wait_for is serviceweaver_method_count $CART Add value 12
check "... 2 of them errors" wait_for is serviceweaver_method_error_count $CART Add value 2
check "... its latency histogram counts 12" wait_for is serviceweaver_method_latency_micros $CART Add count 12
check "... whose buckets sum to the count" wait_for is serviceweaver_method_latency_micros $CART Add buckets True
check "... reply bytes recorded for each call" wait_for is serviceweaver_method_bytes_reply $CART Add count 12
check "Inventory.Take called 10 times, 0 errors" wait_for is serviceweaver_method_count $INV Take value 10
check "... 0 errors" wait_for is serviceweaver_method_error_count $INV Take value 0
check "Pricer.Price (colocated with Main: a local call) 5 times" wait_for is serviceweaver_method_count $PRICER Price value 5
check "the app's counter shop_buys is 10" wait_for is shop_buys - - value 10
check "the app's gauge shop_last_flood is 50" wait_for is shop_last_flood - - value 50
check "the app's histogram shop_flood_lines: 1 observation" wait_for is shop_flood_lines - - count 1
check "... of 50" wait_for is shop_flood_lines - - sum 50
check "... its buckets sum to the count" wait_for is shop_flood_lines - - buckets True

"$WD_BIN" metrics "$APP" >"$WD_TMP/table.txt" 2>&1
check "the table shows the app's metrics" grep -Eq '^shop_buys +- +10 +counter' "$WD_TMP/table.txt"
check "... and weaver's per-method ones, components by short name" \
    grep -Eq '^serviceweaver_method_count +caller=weaver.Main component=shop.Cart method=Add remote=true +12 ' "$WD_TMP/table.txt"
check "... without the deployer's own calls" bash -c "! grep -q deployerControl '$WD_TMP/table.txt'"
"$WD_BIN" metrics "$APP" shop_flood >"$WD_TMP/filtered.txt"
check "a filter keeps matching names only" bash -c "grep -q shop_flood_lines '$WD_TMP/filtered.txt' && ! grep -q shop_buys '$WD_TMP/filtered.txt'"

# the Prometheus endpoint, scraped by a real Prometheus
check "GET /metrics on [docker] metrics is Prometheus text" \
    bash -c "curl -fsS http://127.0.0.1:$MPORT/metrics | grep -q '^# TYPE shop_buys counter'"
check "... with group and replica labels" \
    bash -c "curl -fsS http://127.0.0.1:$MPORT/metrics | grep -q '^shop_buys{.*replica=\"weaver.Main/0/.*group=\"weaver.Main\"} 10'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/v1/status")
check "the TCP endpoint serves no control routes (404)" [ "$code" = 404 ]
PPORT=$(free_port)
mkdir -p "$WD_TMP/prom"
cat >"$WD_TMP/prom/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: weaver
    static_configs: [{targets: ["127.0.0.1:$MPORT"]}]
YML
prometheus --config.file="$WD_TMP/prom/prometheus.yml" --storage.tsdb.path="$WD_TMP/prom/data" \
    --web.listen-address="127.0.0.1:$PPORT" >"$WD_TMP/prom/log" 2>&1 &
on_cleanup "kill $! 2>/dev/null"
promq() { # QUERY -> the single value
    curl -fsS --max-time 5 "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if len(r) == 1 else "results=%d" % len(r))'
}
pis() { [ "$(promq "$1")" = "$2" ]; }
check "Prometheus scrapes us: target up" wait_for pis 'up{job="weaver"}' 1
check "Prometheus: sum of Cart.Add calls is 12" \
    wait_for pis "sum(serviceweaver_method_count{component=\"$CART\",method=\"Add\"})" 12
check "Prometheus: Cart.Add errors 2" pis "sum(serviceweaver_method_error_count{component=\"$CART\",method=\"Add\"})" 2
check "Prometheus: latency _count 12" pis "sum(serviceweaver_method_latency_micros_count{component=\"$CART\",method=\"Add\"})" 12
check "Prometheus: latency +Inf bucket 12" pis "sum(serviceweaver_method_latency_micros_bucket{component=\"$CART\",method=\"Add\",le=\"+Inf\"})" 12
check "Prometheus: shop_buys 10" pis 'sum(shop_buys)' 10
check "Prometheus: shop_flood_lines_sum 50" pis 'sum(shop_flood_lines_sum)' 50

# a replica that goes keeps its counts; its replacement counts on from there
docker kill "$APP-shop-cart-0" >/dev/null 2>&1
check "a killed Cart replica is replaced and buys again" wait_for get "/buy?item=kiwi"
check "Cart.Add counts on from 12 (13, none lost)" wait_for is serviceweaver_method_count $CART Add value 13
check "Inventory.Take 11" wait_for is serviceweaver_method_count $INV Take value 11

# the control socket
sock=$(ls "$XDG_STATE_HOME"/weaver-docker/"$APP"/control-*.sock 2>/dev/null | head -1)
check "the control socket exists in the app's state directory" [ -S "$sock" ]
check "... mode 0600" [ "$(stat -c %a "$sock")" = 600 ]
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://x/v1/nothing)
check "an unknown route is 404" [ "$code" = 404 ]
check "GET /v1/status lists the replicas" \
    bash -c "curl -fsS --unix-socket '$sock' http://x/v1/status | grep -q '\"group\":\"shop.Cart\"'"

# bad input
"$WD_BIN" metrics nosuchapp-$WD_TEST_RUN >"$WD_TMP/bad1" 2>&1; rc=$?
check "metrics of an app that is not running: exit != 0" [ "$rc" != 0 ]
check "... one line saying so" bash -c "[ \$(wc -l <'$WD_TMP/bad1') = 1 ] && grep -q 'is not running' '$WD_TMP/bad1'"
"$WD_BIN" metrics --json --prometheus "$APP" >"$WD_TMP/bad2" 2>&1; rc=$?
check "--json with --prometheus: exit != 0, one line" bash -c "[ $rc != 0 ] && [ \$(wc -l <'$WD_TMP/bad2') = 1 ]"
write_toml "$WD_TMP/bad.toml" "nowhere"
"$WD_BIN" up -d "$WD_TMP/bad.toml" >"$WD_TMP/bad3" 2>&1; rc=$?
check "[docker] metrics that is not host:port: exit != 0, says what to write" \
    bash -c "[ $rc != 0 ] && grep -q 'is not host:port' '$WD_TMP/bad3'"
APP2=$APP-b
sed "s/name = \"$APP\"/name = \"$APP2\"/" "$WD_TMP/w.toml" >"$WD_TMP/taken.toml" # same metrics port
on_cleanup "'$WD_BIN' down $APP2"
"$WD_BIN" up -d "$WD_TMP/taken.toml" >"$WD_TMP/bad4" 2>&1; rc=$?
check "a metrics port in use: exit != 0, names the address" \
    bash -c "[ $rc != 0 ] && grep -q '127.0.0.1:$MPORT' '$WD_TMP/bad4'"
check "... and leaves no container behind" \
    bash -c "[ -z \"\$(docker ps -aq --filter label=org.weaver-docker.app=$APP2)\" ]"

# a deployer that does not answer (stopped): one line naming it, no hang
dpid=$(sed -n 's/.*deployer pid \([0-9]*\).*/\1/p' "$WD_TMP/up.out")
kill -STOP "$dpid"
on_cleanup "kill -CONT $dpid 2>/dev/null"
"$WD_BIN" metrics "$APP" >"$WD_TMP/bad5" 2>&1; rc=$?
kill -CONT "$dpid"
check "metrics of a deployer that does not answer: exit != 0, one line saying so" \
    bash -c "[ $rc != 0 ] && [ \$(wc -l <'$WD_TMP/bad5') = 1 ] && grep -q 'does not answer' '$WD_TMP/bad5'"
check "... and it answers again once it runs" wait_for "$WD_BIN" metrics "$APP" shop_buys

check "down ends it" "$WD_BIN" down "$APP"
check "... asking through the control API: the reason is in the app's log" \
    bash -c "'$WD_BIN' logs '$APP' | grep -q 'stopping $APP: weaver-docker down (pid'"
check "... and the control socket is gone" bash -c "! ls '$XDG_STATE_HOME'/weaver-docker/'$APP'/control-*.sock 2>/dev/null"

# the process runtime has the same API
write_toml "$WD_TMP/p.toml" "127.0.0.1:0"
check "up -d --runtime=process" "$WD_BIN" up -d --runtime=process "$WD_TMP/p.toml" >"$WD_TMP/p.out" 2>&1
port=$(sed -n 's/.*listener shop at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/p.out")
for i in 1 2 3; do get "/buy?item=fig" >/dev/null; done
check "process runtime: Cart.Add counted 3" wait_for is serviceweaver_method_count $CART Add value 3
check "down" "$WD_BIN" down "$APP"
finish
