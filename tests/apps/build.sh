#!/bin/bash
# Builds the Go side of weaver-docker's tests (run by `make apps`):
#
#   build/go/bin/weaver           the weaver CLI (weaver multi deploy, generate)
#                                 at v0.24.6, built in the throwaway module
#                                 build/go/wgen with golang.org/x/tools v0.38.0
#                                 (weaver's pinned x/tools v0.14.0 does not
#                                 compile with Go >= 1.25; see
#                                 docs "Building weaver apps with current Go")
#   build/go/bin/weaver-v0.24.3   the v0.24.3 CLI/generator, built the same way
#                                 (a v0.24.6 `weaver multi` cannot run a v0.24.3
#                                 app: the request headers differ)
#   build/go/bin/docker-compose-v5
#                                 the Go Compose CLI (github.com/docker/compose/v5
#                                 v5.6.0, which needs Go >= 1.26.8; v5.7.0 and
#                                 later need 1.26.10), built in the throwaway
#                                 module build/go/compose-v5; test_compose.sh runs
#                                 the compose file with it
#   build/go/apps/<name>          the apps: shop, shop-v0243, echo, wide, hello,
#                                 pgstore, versioned-v1, versioned-v2,
#                                 versioned-v2crash, versioned-v2deaf (the last
#                                 four: one source, versions set by -ldflags)
#                                 (static, CGO_ENABLED=0 go build -trimpath)
#   build/go/apps/shop-dynamic    shop linked dynamically (CGO_ENABLED=1; skipped
#                                 with a warning when there is no C compiler)
#   build/go/apps/matrix*         the version-matrix app (tests/apps/matrix) at
#                                 v0.24.6 (matrix) and as matrix-v0243,
#                                 matrix-v0232, matrix-v0220, matrix-v0212,
#                                 matrix-v0200 and matrix-v0190 (the last one
#                                 predates v0.20.0: it exists to be refused)
#   build/go/bin/weaver-VERSION   the older CLIs/generators (v0.23.2, v0.22.0,
#                                 v0.21.2, v0.20.0, v0.19.0): built only by
#                                 --generate, since weaver_gen.go is committed
#
# The apps' weaver_gen.go files are committed, so a normal run only compiles.
# It is idempotent: a tool or app is rebuilt only when missing or older than
# one of its sources (*.go, go.mod, go.sum); the Compose CLI only when missing
# or of another version. Needs Go >= 1.21 (>= 1.26.8 for the Compose CLI, or a
# toolchain the go command may fetch) and the Go module proxy; nothing else.
#
# Usage: tests/apps/build.sh [--generate] [--force]
#   --generate  re-run wide/gen.sh and `weaver generate` in every app (using
#               the generator matching the app's weaver version), then build
#   --force     rebuild every app even if it looks up to date
# Environment: GO (the go command; default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build/go
generate=0 force=0
for arg in "$@"; do
	case $arg in
	--generate) generate=1 ;;
	--force) force=1 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
	esac
done

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$GO" ] || { echo "build.sh: no go command (set GO=/path/to/go)" >&2; exit 1; }
# The generator runs `go list`, so the same go must come first on PATH.
export PATH="$(dirname "$GO"):$PATH"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
GOV=$("$GO" env GOVERSION)

XTOOLS=v0.38.0
COMPOSE_V5=v5.6.0
# name  source dir (relative to the repo)  weaver version  cgo  [go linker
# flags: the rest of the line, may contain spaces; passed as -ldflags]
APPS=(
	"shop         tests/apps/shop        v0.24.6 0"
	"shop-v0243   tests/apps/shop-v0243  v0.24.3 0"
	"echo         tests/apps/echo        v0.24.6 0"
	"wide         tests/apps/wide        v0.24.6 0"
	"hello        examples/hello         v0.24.6 0"
	"pgstore      tests/apps/pgstore     v0.24.6 0"
	"shop-dynamic tests/apps/shop        v0.24.6 1"
	"versioned-v1      tests/apps/versioned v0.24.6 0 -X=main.version=v1"
	"versioned-v2      tests/apps/versioned v0.24.6 0 -X=main.version=v2"
	"versioned-v2crash tests/apps/versioned v0.24.6 0 -X=main.version=v2 -X=main.mode=crash"
	"versioned-v2deaf  tests/apps/versioned v0.24.6 0 -X=main.version=v2 -X=main.mode=deaf"
	"matrix       tests/apps/matrix       v0.24.6 0"
	"matrix-v0243 tests/apps/matrix-v0243 v0.24.3 0"
	"matrix-v0232 tests/apps/matrix-v0232 v0.23.2 0"
	"matrix-v0220 tests/apps/matrix-v0220 v0.22.0 0"
	"matrix-v0212 tests/apps/matrix-v0212 v0.21.2 0"
	"matrix-v0200 tests/apps/matrix-v0200 v0.20.0 0"
	"matrix-v0190 tests/apps/matrix-v0190 v0.19.0 0"
)

log() { printf '  %-8s %s\n' "$1" "$2"; }

# weaver_version BINARY: the github.com/ServiceWeaver/weaver module version
# recorded in BINARY's build info ("" if none). It is a dependency of an app
# and the main module of the weaver CLI.
weaver_version() {
	"$GO" version -m "$1" 2>/dev/null |
		awk '($1 == "dep" || $1 == "mod") && $2 == "github.com/ServiceWeaver/weaver" { print $3 }'
}

# generator VERSION: path of the weaver CLI/generator for VERSION, built on
# first use in build/go/wgen (v0.24.6) or build/go/wgen-VERSION.
generator() {
	local v=$1 bin dir
	if [ "$v" = v0.24.6 ]; then
		bin=$out/bin/weaver dir=$out/wgen
	else
		bin=$out/bin/weaver-$v dir=$out/wgen-$v
	fi
	if [ -x "$bin" ] && [ "$(weaver_version "$bin")" = "$v" ] &&
		"$GO" version -m "$bin" | grep -q "golang.org/x/tools[[:space:]]*$XTOOLS"; then
		echo "$bin"
		return
	fi
	log WEAVER "$bin ($v, x/tools $XTOOLS)" >&2
	rm -rf "$dir"
	mkdir -p "$dir" "$out/bin"
	printf 'module wgen\n\ngo 1.24\n' >"$dir/go.mod"
	if ! (
		cd "$dir"
		"$GO" get "github.com/ServiceWeaver/weaver@$v" "golang.org/x/tools@$XTOOLS"
		nice "$GO" build -trimpath -o "$bin.tmp" github.com/ServiceWeaver/weaver/cmd/weaver
	) >"$dir/build.log" 2>&1; then
		cat "$dir/build.log" >&2
		echo "build.sh: building the weaver $v CLI failed" >&2
		exit 1
	fi
	mv "$bin.tmp" "$bin"
	[ "$(weaver_version "$bin")" = "$v" ] || { echo "build.sh: $bin is not weaver $v" >&2; exit 1; }
	echo "$bin"
}

# compose_version BINARY: the github.com/docker/compose/v5 version in BINARY's build info.
compose_version() {
	"$GO" version -m "$1" 2>/dev/null |
		awk '($1 == "dep" || $1 == "mod") && $2 == "github.com/docker/compose/v5" { print $3 }'
}

# compose_cli: builds build/go/bin/docker-compose-v5 (the Go Compose CLI at $COMPOSE_V5) in
# build/go/compose-v5 unless it is there at that version. About 4 minutes on 2 cores the first
# time; it runs standalone (`docker-compose-v5 version`) against DOCKER_HOST.
compose_cli() {
	local bin=$out/bin/docker-compose-v5 dir=$out/compose-v5
	if [ -x "$bin" ] && [ "$(compose_version "$bin")" = "$COMPOSE_V5" ]; then
		return
	fi
	log COMPOSE "$bin ($COMPOSE_V5, $GOV)"
	rm -rf "$dir"
	mkdir -p "$dir" "$out/bin"
	printf 'module composev5\n\ngo 1.24\n' >"$dir/go.mod"
	# && (set -e does not apply under `if`): a failed get must not let -mod=mod pick a version
	if ! (
		cd "$dir" &&
			"$GO" get "github.com/docker/compose/v5@$COMPOSE_V5" &&
			CGO_ENABLED=0 nice "$GO" build -mod=mod -trimpath -o "$bin.tmp" github.com/docker/compose/v5/cmd
	) >"$dir/build.log" 2>&1; then
		cat "$dir/build.log" >&2
		echo "build.sh: building the Go Compose CLI $COMPOSE_V5 failed" >&2
		exit 1
	fi
	mv "$bin.tmp" "$bin"
	[ "$(compose_version "$bin")" = "$COMPOSE_V5" ] ||
		{ echo "build.sh: $bin is not compose $COMPOSE_V5" >&2; exit 1; }
}

# up_to_date BINARY DIR: BINARY exists and no source in DIR is newer.
up_to_date() {
	[ -f "$1" ] || return 1
	[ -z "$(find -L "$2" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$1" -print -quit)" ]
}

have_cc() { command -v "${CC:-gcc}" >/dev/null 2>&1 || command -v cc >/dev/null 2>&1; }

# The CLIs are always built: tests and benchmarks run `weaver multi deploy`.
generator v0.24.6 >/dev/null
generator v0.24.3 >/dev/null
# test_compose.sh runs the compose file under the Go Compose CLI too.
compose_cli

if [ $generate = 1 ]; then
	log GEN tests/apps/wide/components.go
	"$root/tests/apps/wide/gen.sh"
	declare -A done_dirs=()
	for entry in "${APPS[@]}"; do
		read -r name dir ver cgo flags <<<"$entry"
		[ -z "${done_dirs[$dir]:-}" ] || continue
		done_dirs[$dir]=1
		gen=$(generator "$ver")
		log GENERATE "$dir (weaver $ver)"
		(cd "$root/$dir" && nice "$gen" generate .)
	done
	force=1
fi

mkdir -p "$out/apps"
for entry in "${APPS[@]}"; do
	read -r name dir ver cgo flags <<<"$entry"
	bin=$out/apps/$name
	if [ $force = 0 ] && up_to_date "$bin" "$root/$dir"; then
		continue
	fi
	if [ "$cgo" = 1 ] && ! have_cc; then
		echo "build.sh: warning: no C compiler, not building $name (needs CGO_ENABLED=1)" >&2
		continue
	fi
	log GO "build/go/apps/$name ($GOV, weaver $ver$([ "$cgo" = 1 ] && echo ', cgo')${flags:+, $flags})"
	(cd "$root/$dir" && CGO_ENABLED=$cgo nice "$GO" build -trimpath -ldflags="$flags" -o "$bin.tmp" .)
	got=$(weaver_version "$bin.tmp")
	if [ "$got" != "$ver" ]; then
		echo "build.sh: $name was built with weaver '${got}', want $ver" >&2
		rm -f "$bin.tmp"
		exit 1
	fi
	mv "$bin.tmp" "$bin"
done
