#!/bin/bash
# bench/composeimage.sh [BUILD] - issue 13's image figure (part of `make bench`): the image
# `weaver-docker compose` builds for the shop app against the one `weaver-docker up` runs, on
# the real engine. The compose image adds the static manager (images/manager); goal: at most
# 2 MiB over the up image. Prints a small table and composeimage_* key=value lines. Measures;
# asserts nothing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build/default}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WD=$BUILD/weaver-docker
MGR=$BUILD/manager/weaver-docker-manager
APPS=$ROOT/build/go/apps
for f in "$WD" "$MGR" "$APPS/shop"; do
    [ -x "$f" ] || { echo "composeimage_skipped=$f is not built"; exit 0; }
done
export WEAVER_DOCKER_SHIM=${WEAVER_DOCKER_SHIM:-$BUILD/shim/weaver-docker-shim}
TMP=$(mktemp -d /tmp/wd-composeimage.XXXXXX)
TAG=bench-composeimage-$$
export WEAVER_DOCKER_LABELS=org.weaver-docker.test=$TAG
export XDG_STATE_HOME=$TMP/state
mkdir -p "$XDG_STATE_HOME"
APP=composeimg$$
cleanup() {
    "$WD" down "$APP" >/dev/null 2>&1
    docker ps -aq --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=org.weaver-docker.test=$TAG" | xargs -r docker network rm >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
port=$(python3 "$ROOT/bench/bench.py" freeport)
sed -e "s|^binary = .*|binary = \"$APPS/shop\"|" -e "s|^name = .*|name = \"$APP\"|" \
    -e "s|address = \"[^\"]*\"|address = \"127.0.0.1:$port\"|" \
    "$ROOT/tests/apps/shop/weaver.toml" >"$TMP/weaver.toml"

size() { docker image inspect -f '{{.Size}}' "$1" 2>/dev/null || echo 0; }
"$WD" compose -o "$TMP/app.yml" "$TMP/weaver.toml" >"$TMP/compose.out" 2>&1 ||
    { echo "composeimage_skipped=compose failed: $(tail -n 1 "$TMP/compose.out")"; exit 0; }
cimg=$(sed -n 's/.*image: "\(sha256:[0-9a-f]*\)".*/\1/p' "$TMP/app.yml" | head -n 1)
"$WD" up -d "$TMP/weaver.toml" >"$TMP/up.out" 2>&1 ||
    { echo "composeimage_skipped=up failed: $(tail -n 1 "$TMP/up.out")"; exit 0; }
uimg=$(docker ps -q --filter "label=org.weaver-docker.test=$TAG" | head -n 1 | xargs -r docker inspect -f '{{.Image}}')
cs=$(size "$cimg")
us=$(size "$uimg")
ms=$(stat -c %s "$MGR")
extra=$((cs - us))
printf '%-34s %12s\n' "image" "bytes"
printf '%-34s %12d\n' "up (app + shim)" "$us" "compose (app + shim + manager)" "$cs" \
    "  of which the static manager" "$ms"
echo "composeimage_up_bytes=$us"
echo "composeimage_compose_bytes=$cs"
echo "composeimage_manager_bytes=$ms"
if [ "$us" -gt 0 ] && [ "$cs" -gt 0 ]; then
    verdict=MISSED
    [ "$extra" -le $((2 * 1024 * 1024)) ] && verdict=met
    echo "composeimage_goal=compose image $((extra / 1024)) KiB over the up image (goal <= 2048 KiB): $verdict"
fi
