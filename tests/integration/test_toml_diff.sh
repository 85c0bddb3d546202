#!/bin/bash
# Differential test of the TOML reader (engine/weaver/toml.c) against Python's tomllib, over the corpus
# in tests/toml/{valid,invalid}/. Needs no engine. Uses the build dir of $WD_BIN.
. "$(dirname "$0")/lib.sh"
build=$(dirname "$WD_BIN")
if [ ! -f "$build/libwd.a" ]; then
    not_ok "toml difftest: $build/libwd.a not built"
    finish
fi
while IFS= read -r line; do
    case "$line" in
    "ok - "*) ok "${line#ok - }" ;;
    "not ok - "*) not_ok "${line#not ok - }" ;;
    *) echo "$line" ;;
    esac
done < <("$WD_ROOT/tests/toml/difftest.sh" "$build" 2>&1)
finish
