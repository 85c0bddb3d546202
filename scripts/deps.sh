#!/bin/sh
# Install the Debian 12 packages weaver-docker needs to build and test, if any is missing.
set -eu
pkgs="build-essential pkg-config libcurl4-openssl-dev libcjson-dev libprotobuf-c-dev
protobuf-c-compiler libarchive-dev libssl-dev libcmocka-dev libyaml-dev musl-tools clang
libclang-rt-14-dev python3 curl ca-certificates"
# `make test` also exercises the Podman engine (compat API) next to Docker: runc (crun fails on
# hybrid cgroups) and the dnsname CNI plugin, without which containers cannot reach each other by
# name (a Recommends of podman, so --no-install-recommends leaves it out); and a throwaway
# PostgreSQL cluster for the host_ports tests; podman-compose runs the compose file on Podman
# (test_compose_podman.sh).
case " $* " in *" --test "*) pkgs="$pkgs podman runc golang-github-containernetworking-plugin-dnsname
podman-compose postgresql iproute2 prometheus chromium chromium-driver" ;; esac
# `make bench`: wrk drives the listener throughput figures (bench/listener.sh).
case " $* " in *" --bench "*) pkgs="$pkgs wrk" ;; esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
    echo "deps: Go (>= 1.21) is needed to build the Service Weaver test apps; install golang-go" >&2
    exit 1
fi
