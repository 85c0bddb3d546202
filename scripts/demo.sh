#!/bin/bash
# make demo: run the bundled example (examples/hello) in containers, show it answering, show
# ps and logs, then take it down. Usage: scripts/demo.sh path/to/weaver-docker
set -euo pipefail
cd "$(dirname "$0")/.."
WD=${1:-build/default/weaver-docker}
CFG=examples/hello/weaver.toml
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
if ! docker info >/dev/null 2>&1; then
    echo "demo: no container engine answers (start Docker: 'sudo systemctl start docker')" >&2
    exit 1
fi
"$WD" down hello >/dev/null 2>&1 || true
trap '"$WD" down hello >/dev/null 2>&1 || true' EXIT
say "weaver-docker up -d $CFG"
"$WD" up -d "$CFG"
port=$("$WD" ps --json hello | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["listeners"]["hello"].rsplit(":",1)[1])')
for name in World Weaver Docker; do
    say "curl 'localhost:$port/hello?name=$name'"
    curl -fsS "localhost:$port/hello?name=$name"
done
say "weaver-docker ps hello"
"$WD" ps hello
say "weaver-docker logs hello | tail -5"
"$WD" logs hello | tail -5
say "weaver-docker down hello"
"$WD" down hello
trap - EXIT
echo
echo "demo: the example ran in containers and answered; everything it created is removed."
