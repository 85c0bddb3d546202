#!/bin/bash
# The dashboard: `dashboard APP` prints the URL of a page the deployer serves on loopback under a
# secret path. A real headless Chromium, driven through chromedriver's WebDriver HTTP API (python3
# urllib only), loads it with no console errors; every group and replica of `ps --json` has its
# row; the SVG call graph has one node per component and one edge per call of the binary
# (`inspect`); a killed Cart container shows restarts=1 on the page without a reload; the log
# filter works as a plain GET form; a screenshot is kept in build/test-artifacts. The JSON API
# answers under the token, a wrong token gets 404, and a dashboard of an app that is not running
# is one line of error.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    not_ok "chromium and chromium-driver are installed (scripts/deps.sh --test)"
    finish
fi
export XDG_STATE_HOME=$WD_TMP/state
APP=dash-$WD_TEST_RUN
ARTIFACTS=$WD_ROOT/build/test-artifacts
mkdir -p "$ARTIFACTS"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bad input first: nothing of this name runs
out=$("$WD_BIN" dashboard "nosuch-$WD_TEST_RUN" 2>&1)
rc=$?
check "dashboard of an app that is not running fails" [ "$rc" -ne 0 ]
check "... with one line" [ "$(printf '%s\n' "$out" | wc -l)" = 1 ]

cat >"$WD_TMP/w.toml" <<EOF
[serviceweaver]
name = "$APP"
binary = "$APPS/shop"
colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]
[docker]
listeners.shop = {address = "127.0.0.1:0"}
["example.com/shop/Cart"]
Store = "s"
Max = 100
EOF
on_cleanup "'$WD_BIN' down $APP"
check "up -d the shop app" "$WD_BIN" up -d "$WD_TMP/w.toml" >"$WD_TMP/up.out" 2>&1 || cat "$WD_TMP/up.out"
port=$(sed -n 's/.*listener "\{0,1\}shop"\{0,1\} at 127.0.0.1:\([0-9]*\).*/\1/p' "$WD_TMP/up.out" | head -1)
get() { curl -fsS --max-time 10 "http://127.0.0.1:$port$1"; }
check "the app answers" wait_for get /healthz
for i in 1 2 3; do get "/buy?item=apple" >/dev/null 2>&1; done
buy() { get "/buy?item=apple" >/dev/null; }
check "a few buys go through" buy

"$WD_BIN" dashboard "$APP" >"$WD_TMP/dash.out" 2>"$WD_TMP/dash.err"
rc=$?
URL=$(sed -n "s|^$APP: dashboard at \(http://127\.0\.0\.1:[0-9]*/[^/ ]*/\)\$|\1|p" "$WD_TMP/dash.out")
check "dashboard APP exits 0" [ "$rc" = 0 ]
check "... and prints one line: APP: dashboard at http://127.0.0.1:PORT/TOKEN/" \
    bash -c "[ \"\$(wc -l <'$WD_TMP/dash.out')\" = 1 ] && [ -n '$URL' ]"
if [ -z "$URL" ]; then
    diag "stdout: $(cat "$WD_TMP/dash.out")"
    diag "stderr: $(cat "$WD_TMP/dash.err")"
    finish
fi
ORIGIN=${URL%/*/}
TOKEN=${URL#"$ORIGIN"/}
TOKEN=${TOKEN%/}

# ---- the HTTP side, with curl ----
code() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$1"; }
check "GET /TOKEN/ is the page" bash -c "curl -fsS --max-time 10 '$URL' | grep -q '^<!DOCTYPE html>'"
check "GET /TOKEN/fragment is the content alone (no <html>)" \
    bash -c "curl -fsS --max-time 10 '${URL}fragment' >'$WD_TMP/frag' && grep -q 'id=\"replicas\"' '$WD_TMP/frag' && ! grep -q '<html' '$WD_TMP/frag'"
json_ok() { # PATH PYTHON-EXPR-ON-d
    curl -fsS --max-time 10 "$URL$1" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)"
}
check "api/status: JSON of this app" json_ok api/status "d['app'] == '$APP' and len(d['replicas']) >= 4"
check "api/graph: components and edges" json_ok api/graph "len(d['components']) == 5 and len(d['edges']) == 4"
check "api/metrics: a metrics list" json_ok api/metrics "isinstance(d['metrics'], list)"
check "api/logs: JSON" json_ok api/logs "d is not None"
check "api/traces: a traces list" json_ok api/traces "isinstance(d['traces'], list)"
# weaver samples about one trace a second and sends spans in batches: buy once a second until
# one arrives (30 s at most)
first_trace() {
    curl -fsS --max-time 10 "${URL}api/traces" | python3 -c 'import json,sys; t=json.load(sys.stdin)["traces"]; print(t[0]["trace_id"] if t else "")' 2>/dev/null
}
TRACE=
for i in $(seq 30); do
    TRACE=$(first_trace)
    [ -n "$TRACE" ] && break
    curl -fsS --max-time 10 "http://127.0.0.1:$port/buy?item=fig" >/dev/null 2>&1
    sleep 1
done
check "api/traces lists the traces the weavelets sent" [ -n "$TRACE" ]
if [ -n "$TRACE" ]; then
    check "api/trace?id=ID: its spans" json_ok "api/trace?id=$TRACE" "len(d['spans']) >= 1"
    check "?trace=ID shows its timeline bars" \
        bash -c "curl -fsS --max-time 10 '$URL?trace=$TRACE' | grep -q 'class=\"bar\"'"
fi
BAD=$(printf '%s' "$TOKEN" | tr '0-9a-zA-Z' 'a-zA-Z0-9')
check "a wrong token gets 404" [ "$(code "$ORIGIN/$BAD/")" = 404 ]
check "... also for the API" [ "$(code "$ORIGIN/$BAD/api/status")" = 404 ]
check "no token at all gets 404" [ "$(code "$ORIGIN/api/status")" = 404 ]

# what the page must show: from ps --json and inspect
"$WD_BIN" ps --json "$APP" >"$WD_TMP/ps.json"
"$WD_BIN" inspect "$APPS/shop" >"$WD_TMP/inspect.txt"
sed -n '/^components:/,/^calls:/{/^  /s/^  //p}' "$WD_TMP/inspect.txt" >"$WD_TMP/components.txt"
sed -n '/^calls:/,/^listeners:/{/^  /s/^  //p}' "$WD_TMP/inspect.txt" >"$WD_TMP/calls.txt"
check "inspect lists the components and calls" \
    bash -c "[ -s '$WD_TMP/components.txt' ] && [ -s '$WD_TMP/calls.txt' ]"

# ---- the browser side ----
CDPORT=$(free_port)
# its own process group, so that cleanup ends chromedriver and every browser it started
setsid chromedriver --port="$CDPORT" >"$WD_TMP/chromedriver.log" 2>&1 &
CD=$!
on_cleanup "kill -TERM -- -$CD"
check "chromedriver answers" wait_for curl -fsS "http://127.0.0.1:$CDPORT/status"

cat >"$WD_TMP/browser.py" <<'PY'
# WebDriver over HTTP with urllib (W3C protocol plus chromedriver's se/log). Prints TAP lines.
import base64, json, subprocess, sys, time, urllib.error, urllib.request

cd, url, ps_path, comps_path, calls_path, kill_cmd, shot, profile = sys.argv[1:9]
base = "http://127.0.0.1:%s" % cd
failed = 0

def tap(ok, name):
    global failed
    print(("ok - " if ok else "not ok - ") + name, flush=True)
    failed += 0 if ok else 1

def wd(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        raise RuntimeError("%s %s: %s" % (method, path, e.read().decode(errors="replace")[:500]))

caps = {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
        "--user-data-dir=" + profile, "--no-first-run", "--disable-dev-shm-usage"]},
    "goog:loggingPrefs": {"browser": "ALL"}}}}
sid = wd("POST", "/session", caps)["sessionId"]
S = "/session/" + sid

def js(script, *args):
    return wd("POST", S + "/execute/sync", {"script": script, "args": list(args)})

def severe():
    return [e for e in wd("POST", S + "/se/log", {"type": "browser"}) if e.get("level") == "SEVERE"]

def wait(pred, secs):
    end = time.time() + secs
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    return pred()

try:
    wd("POST", S + "/url", {"url": url})
    tap(wait(lambda: js("return document.readyState") == "complete", 20), "the page loads")
    tap(js("return !!document.querySelector('svg.graph')"), "it shows the call graph")
    time.sleep(5)  # two refreshes
    bad = severe()
    tap(not bad, "no SEVERE console entries after load and two refreshes")
    for e in bad:
        print("# " + e.get("message", "")[:300])

    # every group and replica of ps --json has its row
    deps = json.load(open(ps_path))
    reps = [r for d in deps for r in d.get("replicas", [])]
    rows = js("return Array.from(document.querySelectorAll('tr[data-group]'))"
              ".map(function(t){return [t.dataset.group, t.dataset.replica];})")
    have = set(tuple(r) for r in rows)
    missing = [(r["group"], str(r["replica"])) for r in reps
               if (r["group"], str(r["replica"])) not in have]
    tap(reps and not missing, "every replica of ps --json has a row (%d)" % len(reps))
    if missing:
        print("# missing: %s; rows: %s" % (missing, rows))
    groups = set(r["group"] for r in reps)
    shown = set(js("return Array.from(document.querySelectorAll('#replicas [data-group]'))"
                   ".map(function(e){return e.dataset.group;})"))
    tap(groups <= shown, "every group is shown (%s)" % ", ".join(sorted(groups)))

    # the call graph: exactly one node per component, one edge per call of the binary
    comps = [l.strip() for l in open(comps_path) if l.strip()]
    calls = [tuple(x.strip() for x in l.split("->")) for l in open(calls_path) if "->" in l]
    nodes = js("return Array.from(document.querySelectorAll('svg.graph g.node'))"
               ".map(function(g){return g.getAttribute('data-component');})")
    edges = js("return Array.from(document.querySelectorAll('svg.graph g.edge'))"
               ".map(function(g){return [g.getAttribute('data-caller'), g.getAttribute('data-callee')];})")
    tap(sorted(nodes) == sorted(comps), "one .node per component (%d)" % len(comps))
    tap(sorted(tuple(e) for e in edges) == sorted(calls), "one .edge per call (%d)" % len(calls))
    if sorted(nodes) != sorted(comps) or sorted(tuple(e) for e in edges) != sorted(calls):
        print("# nodes %s edges %s" % (nodes, edges))

    # a killed Cart container: restarts=1 shows up without a reload
    row = "tr[data-group=\"shop.Cart\"][data-replica=\"0\"]"
    before = js("var t=document.querySelector(arguments[0]);return t?t.dataset.restarts:null", row)
    tap(before == "0", "shop.Cart replica 0 starts with restarts=0 (%s)" % before)
    js("window.__wdNoReload = 1")
    subprocess.run(kill_cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = wait(lambda: js("var t=document.querySelector(arguments[0]);"
                            "return t&&t.dataset.restarts==='1'?'1':null", row), 30)
    tap(after == "1", "after docker kill the page shows restarts=1 for shop.Cart/0")
    tap(js("return window.__wdNoReload === 1"), "... without a reload")

    png = base64.b64decode(wd("GET", S + "/screenshot"))
    with open(shot, "wb") as f:
        f.write(png)
    tap(png[:8] == b"\x89PNG\r\n\x1a\n", "a screenshot is saved to " + shot)
    bad = severe()
    tap(not bad, "still no SEVERE console entries")
    for e in bad:
        print("# " + e.get("message", "")[:300])

    # the log filter is a GET form: submitting it needs no script
    wd("POST", S + "/url", {"url": url + "?log=shop.Cart"})
    wait(lambda: js("return document.readyState") == "complete", 20)
    # the filter keeps lines whose component, level or message has it (our own events about
    # shop.Cart, component "deployer", are Cart's lines too)
    rows = js("return Array.from(document.querySelectorAll('#logs tr.log'))"
              ".map(function(t){return t.textContent;})")
    comps_shown = js("return Array.from(document.querySelectorAll('#logs tr.log td.c'))"
                     ".map(function(t){return t.textContent;})")
    tap(js("var i=document.querySelector('form input[name=log]');return i?i.value:null") == "shop.Cart"
        and "shop.Cart" in comps_shown and all("shop.cart" in r.lower() for r in rows),
        "?log=shop.Cart keeps Cart's lines only (%d shown)" % len(rows))
except Exception as e:  # a WebDriver failure is one failed check, not a hung test
    tap(False, "webdriver: %s" % e)
finally:
    try:
        wd("DELETE", S)
    except Exception:
        pass
sys.exit(1 if failed else 0)
PY
python3 "$WD_TMP/browser.py" "$CDPORT" "$URL" "$WD_TMP/ps.json" "$WD_TMP/components.txt" \
    "$WD_TMP/calls.txt" "docker kill $APP-shop-cart-0" "$ARTIFACTS/dashboard.png" \
    "$WD_TMP/chrome-profile" | tee "$WD_TMP/browser.out"
n=$(grep -c '^not ok' "$WD_TMP/browser.out")
t_failed=$((t_failed + n))
check "the browser checks ran" grep -q '^ok - the page loads' "$WD_TMP/browser.out"

# the routes still answer after all that, and the app is still there
check "api/status shows the Cart restart" json_ok api/status \
    "[r['restarts'] for r in d['replicas'] if r['group'] == 'shop.Cart' and r['replica'] == 0] == [1]"
finish
