#!/bin/bash
# Differential test of engine/weaver/toml.c against Python's tomllib (python3 >= 3.11).
#   tests/toml/difftest.sh BUILD_DIR
# Builds a small JSON-dumping driver against BUILD_DIR/libwd.a, then:
#   tests/toml/valid/*.toml    must parse in both, to the same typed tree (toml-test JSON form)
#   tests/toml/invalid/*.toml  must be rejected by both
#   and for each valid file, our re-encoding (wd_toml_emit_table) must read back in tomllib
#   to the same document ("toml/emit/<file>").
# Prints "ok - <file>" / "not ok - <file>"; exits 1 if any case fails.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: difftest.sh BUILD_DIR}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
[ -f "$build/libwd.a" ] || { echo "not ok - $build/libwd.a missing (run make BUILD=...)"; exit 1; }
python3 -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
    { echo "not ok - python3 with tomllib (>= 3.11) not found"; exit 1; }
tmp=$(mktemp -d /tmp/wd-tomldiff.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/toml2json.c" <<'C'
#include "engine/base/error.h"
#include "engine/weaver/toml.h"
#include "engine/base/util.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3)
        return 2;
    char *buf = NULL;
    size_t len = 0;
    if (wd_read_file(argv[1], 64u << 20, &buf, &len) < 0)
        return 2;
    struct wd_toml *t = NULL;
    struct wd_error *err = NULL;
    int r = wd_toml_parse(buf, len, argv[1], &t, &err);
    free(buf);
    if (r < 0) {
        fprintf(stderr, "%s\n", err->msg);
        wd_err_free(&err);
        return 1;
    }
    char *json = argc == 3 ? wd_toml_emit_table(wd_toml_root(t)) : wd_toml_to_json(wd_toml_root(t));
    fputs(json, stdout);
    free(json);
    wd_toml_free(t);
    return 0;
}
C
# A sanitizer build of libwd.a needs the same runtime in the driver: try plain, then ASan+UBSan.
build_driver() {
    gcc -std=gnu11 -D_GNU_SOURCE -I"$root" -O1 -g "$@" -o "$tmp/toml2json" "$tmp/toml2json.c" \
        "$build/libwd.a" -lm
}
build_driver 2>/dev/null || build_driver -fsanitize=address,undefined ||
    { echo "not ok - build toml2json driver"; exit 1; }

cat > "$tmp/compare.py" <<'PY'
import datetime, json, math, sys, tomllib

def typed(v):
    """tomllib value -> toml-test typed JSON form"""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, bool):
        return {"type": "bool", "value": "true" if v else "false"}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        return {"type": "float", "value": repr(v)}
    if isinstance(v, str):
        return {"type": "string", "value": v}
    if isinstance(v, datetime.datetime):
        return {"type": "datetime" if v.tzinfo else "datetime-local", "value": v.isoformat()}
    if isinstance(v, datetime.date):
        return {"type": "date-local", "value": v.isoformat()}
    if isinstance(v, datetime.time):
        return {"type": "time-local", "value": v.isoformat()}
    raise TypeError(type(v))

def norm_c(t, v):
    """normalize a scalar value text from the C side"""
    if t == "float":
        f = float(v)
        return "nan" if math.isnan(f) else repr(f)
    if t == "integer":
        return str(int(v))
    if t in ("datetime", "datetime-local", "date-local", "time-local"):
        return tomllib.loads("x = " + v)["x"].isoformat()  # truncates like tomllib does
    return v

def same(a, b, path):
    if isinstance(a, dict) and set(a) == {"type", "value"} and isinstance(a.get("type"), str) \
            and isinstance(b, dict) and set(b) == {"type", "value"} and isinstance(b.get("type"), str):
        if a["type"] != b["type"]:
            return f"{path}: type {a['type']} vs {b['type']}"
        want = b["value"]
        if norm_c(a["type"], a["value"]) != want:
            return f"{path}: value {a['value']!r} vs {b['value']!r}"
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            d = same(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return f"{path}: {a!r} vs {b!r}"

mode, path, cjson = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "emit":
    with open(path, "rb") as f:
        want = typed(tomllib.load(f))
    try:
        with open(cjson, "rb") as f:
            got = typed(tomllib.load(f))
    except Exception as e:
        print(f"tomllib rejected our re-encoding: {e}"); sys.exit(1)
    if got != want:
        print("re-encoding reads back differently"); sys.exit(1)
    sys.exit(0)
try:
    with open(path, "rb") as f:
        py = tomllib.load(f)
    pyerr = None
except Exception as e:  # TOMLDecodeError, UnicodeDecodeError
    py, pyerr = None, f"{type(e).__name__}: {e}"
if mode == "invalid":
    if pyerr is None:
        print("tomllib accepted it"); sys.exit(1)
    sys.exit(0)
if pyerr is not None:
    print("tomllib rejected it: " + pyerr); sys.exit(1)
with open(cjson) as f:
    c = json.load(f)
d = same(c, typed(py), "$")
if d:
    print("mismatch at " + d); sys.exit(1)
PY

failed=0
for kind in valid invalid; do
    for f in "$root"/tests/toml/$kind/*.toml; do
        [ -f "$f" ] || continue
        name="toml/$kind/$(basename "$f")"
        out="$tmp/out.json"
        "$tmp/toml2json" "$f" >"$out" 2>"$tmp/err"; rc=$?
        if [ "$kind" = valid ] && [ $rc -ne 0 ]; then
            echo "not ok - $name"; echo "# ours rejected it: $(head -c 300 "$tmp/err")"; failed=$((failed + 1)); continue
        fi
        if [ "$kind" = invalid ] && [ $rc -ne 1 ]; then
            echo "not ok - $name"; echo "# ours accepted it (rc $rc)"; failed=$((failed + 1)); continue
        fi
        if [ "$kind" = invalid ] && ! grep -qE '^.+:[0-9]+: .+' "$tmp/err"; then
            echo "not ok - $name"; echo "# error is not FILE:LINE: ...: $(head -c 300 "$tmp/err")"; failed=$((failed + 1)); continue
        fi
        if msg=$(python3 "$tmp/compare.py" "$kind" "$f" "$out" 2>&1); then
            echo "ok - $name"
        else
            echo "not ok - $name"; echo "# $msg" | head -c 600; echo; failed=$((failed + 1))
        fi
        [ "$kind" = valid ] || continue
        name="toml/emit/$(basename "$f")"
        if "$tmp/toml2json" "$f" emit >"$tmp/emit.toml" 2>"$tmp/err" &&
            msg=$(python3 "$tmp/compare.py" emit "$f" "$tmp/emit.toml" 2>&1); then
            echo "ok - $name"
        else
            echo "not ok - $name"; echo "# ${msg:-$(head -c 300 "$tmp/err")}"; failed=$((failed + 1))
        fi
    done
done
[ "$failed" -eq 0 ]
