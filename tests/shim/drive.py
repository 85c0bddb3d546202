#!/usr/bin/env python3
"""Plays the deployer side of the shim link (docs/design/shim-link.md) for test_shim.sh.

usage: drive.py HOST PORT TOKEN_HEX SCENARIO [ARGS...]; exits 0 on success, 1 with a message.
"""
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

HOST, PORT, TOKEN = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
SCENARIO, ARGS = sys.argv[4], sys.argv[5:]


def fail(msg):
    print(f"drive {SCENARIO}: {msg}", file=sys.stderr)
    sys.exit(1)


def hello(chan, token=TOKEN, b5=0, magic=b"WDL1"):
    return magic + chan + bytes([b5, 0, 0]) + token


def recv_exact(s, n, timeout=5.0):
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        try:
            b = s.recv(n - len(out))
        except socket.timeout:
            fail(f"timeout after {len(out)} of {n} bytes")
        if not b:
            fail(f"EOF after {len(out)} of {n} bytes")
        out += b
    return out


def expect_eof(s, timeout=5.0):
    """True if the peer closes without sending anything."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def link(chan, b5=0):
    s = socket.create_connection((HOST, PORT), timeout=5)
    s.sendall(hello(chan, b5=b5))
    if recv_exact(s, 1) != b"\x01":
        fail("no 0x01 answer")
    return s


def echo(s, data):
    s.sendall(data)
    got = recv_exact(s, len(data))
    if got != data:
        fail(f"echo mismatch: {got!r}")


def bulk(s, n):
    data = os.urandom(n)

    def writer():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    got = bytearray()
    s.settimeout(20)
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    t.join()
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        fail(f"payload mismatch: sent {len(data)} got {len(got)}")


def run_health(cmd, want):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if (r.returncode == 0) != want:
        fail(f"{' '.join(cmd)} -> {r.returncode} {r.stdout.strip()!r}, wanted {'0' if want else '!0'}")


if SCENARIO == "bad":  # wrong token, bad magic, bad channel, non-zero reserved byte
    for h in (hello(b"W", token=bytes(32)), hello(b"W", magic=b"WDL2"), hello(b"X"),
              hello(b"D", b5=1), hello(b"H", b5=0)):
        s = socket.create_connection((HOST, PORT), timeout=5)
        s.sendall(h)
        if not expect_eof(s):
            fail(f"hello {h[:8]!r} was not refused")
        s.close()
elif SCENARIO == "w-echo":
    s = link(b"W")
    for i in range(20):
        echo(s, b"ping %d\n" % i)
    s.close()
elif SCENARIO == "split-hello":  # the hello trickles in byte by byte
    s = socket.create_connection((HOST, PORT), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in hello(b"W"):
        s.sendall(bytes([b]))
        time.sleep(0.005)
    if recv_exact(s, 1) != b"\x01":
        fail("no answer")
    echo(s, b"after split hello")
elif SCENARIO == "early-data":  # hello and payload in one segment, before control.sock exists
    s = socket.create_connection((HOST, PORT), timeout=5)
    s.sendall(hello(b"W") + b"early bytes")
    if recv_exact(s, 1 + 11, timeout=10) != b"\x01early bytes":
        fail("early data not relayed")
elif SCENARIO == "bulk":
    s = link(b"W")
    bulk(s, int(ARGS[0]) if ARGS else 1 << 20)
elif SCENARIO == "half-close":  # deployer half-closes; the weavelet's answer still arrives
    s = link(b"W")
    s.sendall(b"last words")
    s.shutdown(socket.SHUT_WR)
    if recv_exact(s, 10) != b"last words" or not expect_eof(s):
        fail("half-close not relayed")
elif SCENARIO == "d-pair":  # parked D links are paired with each weavelet dial, in order
    for i in range(3):
        s = link(b"D")
        if recv_exact(s, 15, timeout=10) != b"weavelet-hello\n":
            fail("no weavelet greeting")
        echo(s, b"from deployer %d" % i)
        s.close()
elif SCENARIO == "d-bulk":
    s = link(b"D")
    recv_exact(s, 15, timeout=10)
    bulk(s, 1 << 20)
elif SCENARIO == "timeout":  # an unauthenticated connection is dropped after 5 s
    s = socket.create_connection((HOST, PORT), timeout=5)
    s.sendall(b"WDL1W")
    t0 = time.time()
    if not expect_eof(s, timeout=10):
        fail("not closed")
    dt = time.time() - t0
    if not 4.0 <= dt <= 7.5:
        fail(f"closed after {dt:.1f} s")
elif SCENARIO == "flood":  # 24 idle unauthenticated connections do not lock the deployer out
    idle = []
    for _ in range(24):
        c = socket.create_connection((HOST, PORT), timeout=5)
        c.sendall(b"WDL1")
        idle.append(c)
    time.sleep(0.2)
    s = link(b"W")
    echo(s, b"still reachable")
    dropped = sum(expect_eof(c, timeout=0.05) for c in idle[:8])
    if dropped < 8:
        fail(f"only {dropped} of the 8 oldest idle connections were dropped")
elif SCENARIO == "health":  # ARGS: the health command
    run_health(ARGS, False)  # no link yet
    s = link(b"W")
    echo(s, b"x")
    run_health(ARGS, True)
    for st, want in ((2, False), (1, True)):
        h = link(b"H", b5=st)
        if not expect_eof(h):
            fail("H link not closed")
        run_health(ARGS, want)
    s.close()
    time.sleep(0.3)
    run_health(ARGS, False)  # no link open
elif SCENARIO == "pipes":  # WEAVER_SHIM_PIPES: the first W link carries fds 3/4, the only one
    s = link(b"W")
    for i in range(5):
        echo(s, b"pipe %d\n" % i)
    s2 = socket.create_connection((HOST, PORT), timeout=5)
    s2.sendall(hello(b"W"))
    if not expect_eof(s2):
        fail("a second W link was not refused")
    s2.close()
    echo(s, b"still linked\n")
    s.close()
elif SCENARIO == "link-close":  # one link, then the deployer goes away
    s = link(b"W")
    echo(s, b"bye")
    s.close()
else:
    fail("unknown scenario")
