#!/bin/sh
# cJSON for the static compose manager (images/manager), built with musl-gcc into $1 (lib/,
# include/): Debian ships no libcjson.a, and a glibc archive would not link into a musl program.
# The source is Debian 12's own package of the libcjson1 we link elsewhere, with its patches
# (security fixes among them), checked against the sums below; nothing of it is committed.
set -eu
out=$1
ver=1.7.15 rev=1+deb12u4
pool=${WD_DEBIAN_POOL:-https://deb.debian.org/debian/pool/main/c/cjson}
orig=cjson_$ver.orig.tar.gz
sums="5308fd4bd90cef7aa060558514de6a1a4a0819974a26e6ed13973c5f624c24b2  $orig
afd19a970966cf534ff1e9ec077d710a5e7e78eb4ec9b499c8bdc32e55da12cb  cjson_$ver-$rev.debian.tar.xz"

fetch() { # fetch FILE: into $out/dl, once
    [ -s "$out/dl/$1" ] && return 0
    curl -fsL --retry 3 -o "$out/dl/$1.part" "$pool/$(echo "$1" | sed 's/+/%2B/g')" || return 1
    mv "$out/dl/$1.part" "$out/dl/$1"
}

mkdir -p "$out/dl" "$out/lib" "$out/include/cjson"
if ! fetch "$orig" || ! fetch "cjson_$ver-$rev.debian.tar.xz"; then
    # The pool keeps only Debian's current revision: take the one apt installed, checked against
    # the sums of its .dsc.
    rev=$(dpkg-query -W -f='${Version}' libcjson1 2>/dev/null | sed 's/^[^-]*-//')
    if [ -z "$rev" ] || ! fetch "cjson_$ver-$rev.dsc" || ! fetch "$orig" ||
        ! fetch "cjson_$ver-$rev.debian.tar.xz"; then
        echo "musl-cjson: cannot download cJSON $ver's Debian source from $pool (the static" \
            "compose manager needs it); check the network or set WD_DEBIAN_POOL" >&2
        exit 1
    fi
    sums=$(sed -n '/^Checksums-Sha256:/,/^[^ ]/s/^ \([0-9a-f]\{64\}\) [0-9]* \(.*\)$/\1  \2/p' \
        "$out/dl/cjson_$ver-$rev.dsc")
fi
if ! (cd "$out/dl" && echo "$sums" | sha256sum -c --quiet --strict >/dev/null); then
    echo "musl-cjson: cJSON's Debian source in $out/dl does not match its checksums; remove" \
        "$out/dl and run make again" >&2
    exit 1
fi
src=$out/src/cJSON-$ver
rm -rf "$out/src"
mkdir -p "$out/src"
tar -xzf "$out/dl/$orig" -C "$out/src"
tar -xJf "$out/dl/cjson_$ver-$rev.debian.tar.xz" -C "$src"
for p in $(grep -v '^#' "$src/debian/patches/series"); do
    patch -s -p1 -d "$src" <"$src/debian/patches/$p"
done
${MUSL_CC:-musl-gcc} -std=c89 -Os -fstack-protector-strong -ffunction-sections -fdata-sections \
    -c -o "$src/cJSON.o" "$src/cJSON.c"
rm -f "$out/lib/libcjson.a"
ar rcs "$out/lib/libcjson.a" "$src/cJSON.o"
cp "$src/cJSON.h" "$out/include/cjson/cJSON.h"
echo "  CJSON $ver-$rev (musl) -> $out/lib/libcjson.a"
