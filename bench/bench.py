#!/usr/bin/env python3
"""bench/bench.py - helpers for bench/run.sh (make bench). Not a test: it measures and prints.

  mkconf SRC DST NAME DPORT MPORT    copy a weaver.toml with another name, an absolute binary
                                    and [docker]/[multi] listeners on localhost:DPORT/MPORT
  freeport                          a free TCP port on 127.0.0.1
  cold [--setsid] [--out F] [--timeout S] --url U [--url U2 ...] -- CMD...
        start CMD, poll each URL in turn (from the same t0) until it answers 200; print JSON
        {"t_<i>_ms": ..., "exit_ms": ..., "rc": ..., "pid": ..., "body_<i>": ...}.
        Without --setsid it waits for CMD to exit (`up -d`), with --setsid it leaves CMD running
        in its own session (process group = its pid) and reports its pid.
  lat --url U -n N [--warmup W]     N sequential GETs on one keep-alive connection; JSON with
        p50/p90/p99/mean/max in microseconds and the error count
  rss LABEL...                      VmRSS of PID 1 of every running container carrying all
        labels (host pid via docker inspect); JSON with the list in KiB
  report RESULTS                    print the table from run.sh's key=value results file
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse


def mkconf(src, dst, name, docker_port, multi_port):
    """Copy a weaver.toml: another app name, an absolute binary, our own listener ports."""
    base = os.path.dirname(os.path.abspath(src))
    out, section = [], ""
    for line in open(src):
        s = line.strip()
        if s.startswith("[") and not s.startswith("[["):
            section = s
        key = s.split("=", 1)[0].strip() if "=" in s else ""
        if section == "[serviceweaver]" and key == "name":
            line = 'name = "%s"\n' % name
        elif section == "[serviceweaver]" and key == "binary":
            rel = s.split("=", 1)[1].strip().strip('"')
            line = 'binary = "%s"\n' % os.path.normpath(os.path.join(base, rel))
        elif section in ("[docker]", "[multi]") and key.startswith("listeners."):
            port = docker_port if section == "[docker]" else multi_port
            line = '%s = {address = "localhost:%s"}\n' % (key, port)
        out.append(line)
    with open(dst, "w") as f:
        f.writelines(out)


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def get(url, timeout):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def cold(args):
    setsid, out, timeout, urls = False, os.devnull, 120.0, []
    while args and args[0] != "--":
        a = args.pop(0)
        if a == "--setsid":
            setsid = True
        elif a == "--out":
            out = args.pop(0)
        elif a == "--timeout":
            timeout = float(args.pop(0))
        elif a == "--url":
            urls.append(args.pop(0))
        else:
            sys.exit("cold: bad option " + a)
    cmd = args[1:]
    res = {}
    with open(out, "ab") as f:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                             start_new_session=setsid)
    res["pid"] = p.pid
    deadline = t0 + timeout
    for i, url in enumerate(urls):
        ok = False
        while time.monotonic() < deadline:
            try:
                st, body = get(url, max(0.1, deadline - time.monotonic()))
                if st == 200:
                    res["t_%d_ms" % i] = (time.monotonic() - t0) * 1e3
                    res["body_%d" % i] = body.strip()
                    ok = True
                    break
            except (OSError, http.client.HTTPException):
                pass
            if not setsid and p.poll() not in (None, 0):
                break  # `up -d` failed: no point in polling
            time.sleep(0.005)
        if not ok:
            res["error"] = "no 200 from %s" % url
            break
    if not setsid:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
            res["exit_ms"] = (time.monotonic() - t0) * 1e3
        except subprocess.TimeoutExpired:
            res["error"] = res.get("error", "command did not exit")
        res["rc"] = p.returncode
    print(json.dumps(res))


def pct(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def lat(args):
    url, n, warm = None, 2000, 200
    while args:
        a = args.pop(0)
        if a == "--url":
            url = args.pop(0)
        elif a == "-n":
            n = int(args.pop(0))
        elif a == "--warmup":
            warm = int(args.pop(0))
    u = urllib.parse.urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    conn = [None]
    errors = 0
    reconnects = 0

    def one():
        nonlocal reconnects
        if conn[0] is None:
            conn[0] = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            reconnects += 1
        try:
            conn[0].request("GET", path)
            r = conn[0].getresponse()
            r.read()
            if r.will_close:
                conn[0].close()
                conn[0] = None
            return r.status
        except (OSError, http.client.HTTPException):
            conn[0].close()
            conn[0] = None
            return 0

    for _ in range(warm):
        one()
    reconnects = 0
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        st = one()
        xs.append((time.perf_counter() - t) * 1e6)
        if st != 200:
            errors += 1
    print(json.dumps({"n": n, "errors": errors, "connections": reconnects,
                      "p50_us": pct(xs, 0.5), "p90_us": pct(xs, 0.9), "p99_us": pct(xs, 0.99),
                      "mean_us": statistics.fmean(xs), "max_us": max(xs)}))


def rss(labels):
    cmd = ["docker", "ps", "-q", "--no-trunc"]
    for l in labels:
        cmd += ["--filter", "label=" + l]
    ids = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    kib = []
    for cid in ids:
        pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid],
                             capture_output=True, text=True).stdout.strip()
        try:
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        kib.append(int(line.split()[1]))
        except (OSError, ValueError):
            pass
    print(json.dumps({"n": len(ids), "kib": kib}))


# ---------------------------------------------------------------------------------------------
# report

def load(path):
    d = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                d.setdefault(k, []).append(v)
    return d


def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(d, k):
    xs = [x for x in (fnum(v) for v in d.get(k, [])) if x is not None]
    return statistics.median(xs) if xs else None


def first(d, k, default=""):
    v = d.get(k)
    return v[0] if v else default


def ms(x):
    return "-" if x is None else ("%.0f ms" % x if x >= 100 else "%.1f ms" % x)


def rps(x):
    return "-" if x is None else "%.0f/s" % x


def us(x):
    return "-" if x is None else ("%.2f ms" % (x / 1e3) if x >= 1000 else "%.0f us" % x)


def report(path):
    d = load(path)
    rows = []   # (measure, weaver-docker, baseline, ratio, goal, verdict)
    goals = []  # (name, met)

    def ratio_row(name, ours, base, fmt, goal=None, short=None, at_least=False, r=None):
        """at_least: more is better (throughput), the goal is a floor; r: the ratio when it is
        not ours / base (e.g. the median of per-pair ratios)."""
        if r is None:
            r = ours / base if ours is not None and base else None
        verdict = ""
        if goal is not None:
            if r is None:
                verdict = "n/a"
                goals.append((short or name, None))
            else:
                met = r >= goal if at_least else r <= goal
                verdict = "met" if met else "MISSED"
                goals.append((short or name, met))
        rows.append((name, fmt(ours), fmt(base), "-" if r is None else "%.2fx" % r,
                     ("%s %.1fx" % (">=" if at_least else "<=", goal)) if goal else "", verdict))

    def info_row(name, val, base=""):
        rows.append((name, val, base, "", "", ""))

    def sep():
        rows.append(None)

    reps = len(d.get("cold_wd_ms", []))
    # 1-2. cold start, re-up
    ratio_row("cold start: command -> 1st 200 /healthz (median of %d)" % reps,
              med(d, "cold_wd_ms"), med(d, "cold_multi_ms"), ms, goal=1.5, short="cold start")
    ratio_row("  -> 1st cross-group 200 /whoami", med(d, "cold_wd_whoami_ms"),
              med(d, "cold_multi_whoami_ms"), ms)
    info_row("  `up -d` returned after", ms(med(d, "cold_wd_exit_ms")))
    info_row("first up, with image build -> 1st 200", ms(fnum(first(d, "first_wd_ms", None))))
    info_row("  its image step", first(d, "first_image", "-"))
    info_row("re-up after down, same binary -> 1st 200", ms(med(d, "cold_wd_ms")))
    info_row("  its image step (-v)", first(d, "reup_image_short", "-"))
    info_row("  images rebuilt on re-up", first(d, "reup_rebuilt", "?"))
    info_row("stop: `down` / SIGINT to multi's group", ms(med(d, "down_wd_ms")),
             ms(med(d, "stop_multi_ms")))
    info_row("  weaver multi processes left after stop", "",
             first(d, "multi_left", "?"))
    sep()
    # 3. latency
    for p in ("price", "whoami"):
        desc = {"price": "/price (Main->Pricer, same group)",
                "whoami": "/whoami (Main->Cart, other group)"}[p]
        for q in ("p50", "p99"):
            ratio_row("latency %s %s" % (desc, q), fnum(first(d, "lat_wd_%s_%s" % (p, q), None)),
                      fnum(first(d, "lat_multi_%s_%s" % (p, q), None)), us, goal=1.2,
                      short="latency /%s %s" % (p, q))
    sep()
    # 4. shim
    info_row("shim RSS (PID 1) max / mean, shop", first(d, "rss_shop", "-"))
    info_row("shim RSS (PID 1) max / mean, wide", first(d, "rss_wide", "-"))
    info_row("shim binary size", first(d, "shim_size", "-"))
    sep()
    # 5. wide
    nw = len(d.get("wide_wd_ms", []))
    ratio_row("wide: up -d -> 1st '50 ok' vs bare create+start x%s (median of %d)"
              % (first(d, "wide_n", "51"), nw), med(d, "wide_wd_ms"), med(d, "wide_base_ms"), ms,
              goal=1.1, short="wide up")
    info_row("  `up -d` returned after", ms(med(d, "wide_wd_exit_ms")))
    info_row("  `down` / removing the baseline's containers", ms(med(d, "wide_down_ms")),
             ms(med(d, "wide_base_rm_ms")))

    sep()
    # 6. listener throughput (bench/listener.sh): the ratio is the median of per-pair ratios
    ratio_row("listener: wrk -c32 GET /healthz req/s vs the container directly (median of %d)"
              % len(d.get("listener_ours_rps", [])), med(d, "listener_ours_rps"),
              med(d, "listener_direct_rps"), rps, goal=0.9, short="listener throughput",
              at_least=True, r=fnum(first(d, "listener_ratio", None)))
    info_row("  latency p50 under that load", us(fnum(first(d, "listener_ours_p50_us", None))),
             us(fnum(first(d, "listener_direct_p50_us", None))))

    hdr = ("measure", "weaver-docker", "baseline", "ratio", "goal", "")
    real = [r for r in rows if r is not None]
    w = [max(len(str(r[i])) for r in real + [hdr]) for i in range(len(hdr))]
    line = "  ".join("-" * x for x in w)
    print("baselines: `weaver multi deploy` (weaver v0.24.6) for the shop rows; for wide, a bare")
    print("create+start of the same containers through libwd (bench/startn.c, default parallelism);")
    print("for the listener, the same container's port at its bridge address (bench/listener.sh)")
    print()
    print("  ".join(str(h).ljust(w[i]) for i, h in enumerate(hdr)).rstrip())
    print(line)
    for r in rows:
        if r is None:
            print()
            continue
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print(line)
    for k in ("detail", "note"):
        for v in d.get(k, []):
            print("%s: %s" % (k, v))
    for v in d.get("detail", []):  # bench/hostports.sh and mtls.sh report goals as detail lines
        for prefix, name in (("hostports_goal=", "host_ports p50"), ("mtls_goal=", "mtls call p50"),
                             ("rollout_goal=", "rollout to v2"),
                             ("composeimage_goal=", "compose image size")):
            if v.startswith(prefix):
                goals.append((name, "MISSED" not in v if "met" in v or "MISSED" in v else None))
    met = [n for n, m in goals if m]
    missed = [n for n, m in goals if m is False]
    na = [n for n, m in goals if m is None]
    s = "SUMMARY: %d of %d goals met" % (len(met), len(goals))
    if met:
        s += "; met: " + ", ".join(met)
    if missed:
        s += "; MISSED: " + ", ".join(missed)
    if na:
        s += "; not measured: " + ", ".join(na)
    print(s)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "mkconf":
        mkconf(*args)
    elif cmd == "freeport":
        freeport()
    elif cmd == "cold":
        cold(args)
    elif cmd == "lat":
        lat(args)
    elif cmd == "rss":
        rss(args)
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
