#!/bin/bash
# `[docker] mtls = true` on the real engine with real weaver v0.24.6 weavelets (issue 10 item 5):
#  - without mtls (control): a plain TCP client on the host calls Cart.Whoami at Cart's bridge
#    address, which is the hole mtls closes (and proves the client below speaks weaver);
#  - with mtls: the shop app works end to end (Main -> Cart -> Inventory, routed, across
#    containers); the same plain client gets no answer; a client presenting a forged
#    certificate (made with the openssl CLI: self-signed, and signed by a look-alike CA) is
#    refused in the TLS handshake and the deployer says why; no private key is in the image,
#    the containers' configuration or /tmp, or anywhere in the host state directory;
#  - compose refuses mtls = true (one line, exit 2); --runtime=process runs with mtls.
# A weaver v0.24.6 weavelet exits when any TLS handshake on its data-plane port fails (README
# "mTLS"), so each refusal here restarts the Cart group: the test waits for the app to answer
# again after each one, and asserts the refusal itself, not that Cart stayed up.
source "$(dirname "$0")/lib.sh"
require_engine
APPS=$WD_ROOT/build/go/apps
[ -x "$APPS/shop" ] || { not_ok "test app shop is built (run make apps)"; finish; }
command -v openssl >/dev/null || { not_ok "the openssl CLI is installed"; finish; }
SHOP=shopm-$WD_TEST_RUN
PSHOP=shopp-$WD_TEST_RUN
# the deployers' state (logs, deployer.log) under this test's own directory, to search it
export XDG_STATE_HOME=$WD_TMP/state TMPDIR=$WD_TMP/tmp
mkdir -p "$XDG_STATE_HOME" "$TMPDIR"
STATE=$XDG_STATE_HOME/weaver-docker
KEYPAT='-----BEGIN [A-Z ]*PRIVATE KEY-----'

mkconf() { # NAME EXTRA-DOCKER-LINES...
    local name=$1; shift
    {
        echo "[serviceweaver]"
        echo "name = \"$name\""
        echo "binary = \"$APPS/shop\""
        echo 'colocate = [["github.com/ServiceWeaver/weaver/Main", "example.com/shop/Pricer"]]'
        echo "[docker]"
        for l in "$@"; do echo "$l"; done
        printf '["example.com/shop/Cart"]\nStore = "s"\nMax = 1000\n'
    } >"$WD_TMP/$name.toml"
    echo "$WD_TMP/$name.toml"
}
on_cleanup "'$WD_BIN' down $SHOP"
listener() { # APP NAME -> port from ps --json
    "$WD_BIN" ps --json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]['listeners']['$2'].rsplit(':',1)[1])"
}
get() { curl -fsS --max-time 10 "http://127.0.0.1:$1$2"; }
clean_app() {
    [ -z "$(docker ps -aq --filter label=org.weaver-docker.app=$1)" ] &&
        [ -z "$(docker network ls -q --filter label=org.weaver-docker.app=$1)" ]
}

# cart_addr APP -> "IP PORT" of the Cart weavelet's data-plane listener: the container's
# listening TCP socket on its bridge address (/proc/PID/net/tcp of its network namespace)
cart_addr() {
    local c pid ip
    c=$(docker ps -q --filter "label=org.weaver-docker.app=$1" --filter label=org.weaver-docker.group=shop.Cart | head -1)
    [ -n "$c" ] || return 1
    pid=$(docker inspect -f '{{.State.Pid}}' "$c")
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$c" | awk '{print $1}')
    python3 - "$pid" "$ip" <<'PY'
import socket, struct, sys
pid, ip = sys.argv[1], sys.argv[2]
want = socket.inet_aton(ip)
for line in open("/proc/%s/net/tcp" % pid).readlines()[1:]:
    f = line.split()
    a, p = f[1].split(":")
    if f[3] == "0A" and struct.pack("<I", int(a, 16)) == want:
        print(ip, int(p, 16))
        sys.exit(0)
sys.exit(1)
PY
}

# The data-plane client: sends weaver's version message and a Cart.Whoami request (v0.24.4+
# header, no deadline, trace or metadata) in the clear, or inside TLS with a certificate
# (--tls CERT KEY [CHAIN]). Prints "answered <weavelet id>" and exits 0 if Cart answered;
# else prints what happened and exits 1. Never waits more than 8 s.
cat >"$WD_TMP/dp.py" <<'PY'
import hashlib, socket, ssl, struct, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
key = hashlib.sha256(b"example.com/shop/Cart.Whoami").digest()[:16]
hdr = key + bytes(8) + b"\0\0"
payload = struct.pack("<I", len(hdr)) + hdr
msg = struct.pack("<QQ", 0, 4 << 8) + bytes(4) + struct.pack("<QQ", 1, 1 | len(payload) << 8) + payload
s = socket.create_connection((ip, port), 5)
s.settimeout(8)
what = ""
try:
    if len(sys.argv) > 3 and sys.argv[3] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        s = ctx.wrap_socket(s)
        what = "TLS %s, " % s.version()
    s.sendall(msg)
    buf = b""
    end = time.time() + 8
    while time.time() < end:
        d = s.recv(65536)
        if not d:
            print(what + "connection closed after %d bytes" % len(buf))
            sys.exit(1)
        buf += d
        while len(buf) >= 16:
            fid, tl = struct.unpack("<QQ", buf[:16])
            n = tl >> 8
            if len(buf) < 16 + n:
                break
            p, buf = buf[16:16 + n], buf[16 + n:]
            if fid == 1 and tl & 0xff == 2:
                ln = struct.unpack("<I", p[:4])[0]
                print("answered " + p[4:4 + ln].decode())
                sys.exit(0)
            if fid == 1:
                print("error frame: %r" % p)
                sys.exit(1)
    print(what + "no answer")
except (OSError, ssl.SSLError) as e:
    print(what + "%s: %s" % (type(e).__name__, e))
sys.exit(1)
PY
dp() { timeout 20 python3 "$WD_TMP/dp.py" "$@"; }

# --- control: mtls off, the bridge address answers anyone on the host ---
cfg=$(mkconf "$SHOP" 'listeners.shop = {address = "127.0.0.1:0"}')
check "up -d without mtls" "$WD_BIN" up -d "$cfg"
port=$(listener "$SHOP" shop)
check "the app answers (Main -> Cart -> Inventory)" test "$(get "$port" '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
read -r cip cport < <(cart_addr "$SHOP")
if [ -n "${cport:-}" ]; then
    out=$(dp "$cip" "$cport")
    check "without mtls a plain TCP client on the host calls Cart at $cip:$cport ($out)" \
        bash -c "printf '%s' \"\$1\" | grep -q '^answered '" _ "$out"
else
    not_ok "Cart's data-plane address found (/proc/PID/net/tcp)"
fi
"$WD_BIN" down "$SHOP" >/dev/null
check "engine clean after the control run" clean_app "$SHOP"

# --- mtls on ---
cfg=$(mkconf "$SHOP" 'listeners.shop = {address = "127.0.0.1:0"}' 'mtls = true')
check "up -d with mtls = true" "$WD_BIN" up -d "$cfg"
port=$(listener "$SHOP" shop)
check "the deployment says mtls" grep -q "deploying $SHOP .*, mtls)" "$STATE/$SHOP/deployer.log"
check "with mtls the app works end to end (Main -> Cart -> Inventory, routed)" \
    test "$(get "$port" '/buy?item=apple')" = "bought apple: 1 in cart (stock 9)"
check "cross-group calls keep working" test "$(get "$port" '/buy?item=apple')" = "bought apple: 2 in cart (stock 8)"
check "Main -> Cart (/whoami)" bash -c "curl -fsS --max-time 10 http://127.0.0.1:$port/whoami | grep -q '^main=.* cart=.'"
check "a config section still reaches Cart" test "$(get "$port" /config)" = "store=s max=1000"
check "every group's weavelet got its certificate (ps: 4 running)" bash -c "'$WD_BIN' ps --json $SHOP | python3 -c '
import json,sys; r=json.load(sys.stdin)[0][\"replicas\"]; assert len(r)==4 and all(x[\"state\"]==\"running\" for x in r), r'"

app_answers() { get "$port" /whoami >/dev/null && get "$port" '/price?item=x' >/dev/null; }

# plain TCP client: the same bytes that got an answer above
read -r cip cport < <(cart_addr "$SHOP")
if [ -n "${cport:-}" ]; then
    out=$(dp "$cip" "$cport")
    check "with mtls a plain TCP client gets no answer from Cart at $cip:$cport ($out)" \
        bash -c "! printf '%s' \"\$1\" | grep -q '^answered '" _ "$out"
    check "... refused in the TLS handshake (the weavelet's log)" wait_for bash -c \
        "'$WD_BIN' logs --system $SHOP | grep -q 'TLS handshake error: tls: first record does not look like a TLS handshake'"
else
    not_ok "Cart's data-plane address found (/proc/PID/net/tcp)"
fi
check "the app answers again after that (Cart restarted if it had to)" wait_for app_answers
diag "Cart restarts so far: $("$WD_BIN" ps --json "$SHOP" | python3 -c 'import json,sys; print([x["restarts"] for x in json.load(sys.stdin)[0]["replicas"] if x["group"]=="shop.Cart"])')"

# forged certificates, made with the openssl CLI, naming Main's group (which may call Cart)
(
    cd "$WD_TMP" || exit 1
    ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    # self-signed, with the name our certificate of Main's group carries
    openssl req -x509 $ec -keyout self.key -out self.pem -days 1 -subj /CN=weaver-main \
        -addext subjectAltName=DNS:weaver-main
    # a look-alike CA (the common name ours has) and a leaf it signs, sent with the CA
    openssl req -x509 $ec -keyout fca.key -out fca.pem -days 1 \
        -subj "/CN=weaver-docker CA $SHOP" -addext basicConstraints=critical,CA:TRUE
    openssl req $ec -keyout leaf.key -out leaf.csr -subj /CN=weaver-main
    printf 'subjectAltName=DNS:weaver-main\nextendedKeyUsage=clientAuth,serverAuth\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA fca.pem -CAkey fca.key -CAcreateserial -days 1 \
        -extfile leaf.ext -out leaf.pem
    cat leaf.pem fca.pem >leafchain.pem
) >"$WD_TMP/openssl.log" 2>&1
check "forged certificates made with the openssl CLI" test -s "$WD_TMP/self.pem" -a -s "$WD_TMP/leafchain.pem"
for f in self leafchain; do
    key=$WD_TMP/${f%chain}.key
    wait_for app_answers
    read -r cip cport < <(cart_addr "$SHOP")
    before=$("$WD_BIN" logs --system "$SHOP" | grep -c 'refused a connection: mtls: ')
    out=$(dp "$cip" "$cport" --tls "$WD_TMP/$f.pem" "$key")
    check "a client presenting a forged certificate ($f) gets no answer ($out)" \
        bash -c "! printf '%s' \"\$1\" | grep -q '^answered '" _ "$out"
    check "... the deployer refused it: the chain does not verify against the deployment CA" wait_for bash -c \
        "[ \$('$WD_BIN' logs --system $SHOP | grep -c 'refused a connection: mtls: the client.s certificate does not verify') -gt $before ]"
done
check "the app answers again after the forged handshakes" wait_for app_answers
check "... and the whole chain too" bash -c "curl -fsS --max-time 10 'http://127.0.0.1:$port/buy?item=pear' | grep -q '^bought pear: 1 in cart'"
"$WD_BIN" logs --system "$SHOP" | grep 'refused a \|exited with' | sed 's/^/# /'

# no private key anywhere on disk: image, container configuration, the containers' /tmp, state
img=$(docker inspect -f '{{.Image}}' "$(docker ps -q --filter "label=org.weaver-docker.app=$SHOP" | head -1)")
check "the image holds no private key (docker save, every layer)" bash -c "! docker save '$img' | tar -xO 2>/dev/null | grep -aqE -- '$KEYPAT'"
check "no container's configuration holds one (env, labels, command)" bash -c "
for c in \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP); do
  docker inspect \$c | grep -q 'PRIVATE KEY' && exit 1; done; exit 0"
check "no key file in the containers' /tmp (a tmpfs): it stays in the weavelet's memory" bash -c "
for c in \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP); do
  p=\$(docker inspect -f '{{.State.Pid}}' \$c); [ -d /proc/\$p/root/tmp ] || exit 1
  grep -rlqE -- '$KEYPAT' /proc/\$p/root/tmp 2>/dev/null && exit 1; done; exit 0"
check "no key in the host state directory (logs, deployer.log)" bash -c "
[ -d '$STATE/$SHOP' ] && ! grep -rqE -- '$KEYPAT' '$STATE' '$TMPDIR'"
check "containers are still read-only and unchanged (docker diff)" bash -c "
for c in \$(docker ps -q --filter label=org.weaver-docker.app=$SHOP); do
  [ -z \"\$(docker diff \$c)\" ] || exit 1; done"
check "down" "$WD_BIN" down "$SHOP"
check "engine clean after down" clean_app "$SHOP"
check "still no key in the host state directory after down" bash -c "! grep -rqE -- '$KEYPAT' '$STATE' '$TMPDIR'"

# --- compose refuses, one line, exit 2, nothing written ---
rc=0; out=$("$WD_BIN" compose "$cfg" -o "$WD_TMP/c.yml" 2>&1) || rc=$?
check "compose refuses mtls = true with one line and exit 2 ($out)" bash -c \
    "[ $rc = 2 ] && [ \$(printf '%s\n' \"\$1\" | wc -l) = 1 ] && printf '%s' \"\$1\" | grep -q 'mtls' && [ ! -e '$WD_TMP/c.yml' ]" _ "$out"

# --- the process runtime runs with mtls too ---
pcfg=$(mkconf "$PSHOP" 'listeners.shop = {address = "127.0.0.1:0"}' 'mtls = true')
"$WD_BIN" up --runtime=process "$pcfg" >"$WD_TMP/p.out" 2>"$WD_TMP/p.err" &
ppid=$!
on_cleanup "kill -9 $ppid"
check "process runtime: up with mtls" wait_for grep -q 'listener "shop" at' "$WD_TMP/p.err"
pport=$(sed -n 's/.*listener "shop" at .*:\([0-9]*\)$/\1/p' "$WD_TMP/p.err" | head -1)
check "process runtime: the deployment says mtls" grep -q ', mtls)' "$WD_TMP/p.err"
check "process runtime: Main -> Cart -> Inventory over mtls" wait_for bash -c \
    "curl -fsS --max-time 10 'http://127.0.0.1:$pport/buy?item=fig' | grep -q '^bought fig: 1 in cart'"
check "process runtime: the weavelets dial mtls:// addresses" bash -c \
    "grep -q 'mtls://tcp://127.0.0.1:' '$WD_TMP/p.out' || '$WD_BIN' logs --system $PSHOP | grep -q 'mtls://tcp://127.0.0.1:'"
kill -INT "$ppid"
rc=0; wait "$ppid" || rc=$?
check "process runtime: Ctrl-C exits 0" test "$rc" = 0
check "process runtime: no key in its logs or state" bash -c "! grep -rqE -- '$KEYPAT' '$STATE' '$TMPDIR' '$WD_TMP/p.out' '$WD_TMP/p.err'"

check "no container or network of this run left" engine_clean
finish
