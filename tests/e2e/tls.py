#!/usr/bin/env python3
"""The collector's side of TLS: a pre-shared key is used only with ECDHE-PSK suites, CBC suites with SHA-1
MACs are never offered, and a refused certificate name or a wrong key is reported as such. The agent serves
the sessions that work; openssl s_server plays an agent that offers only what the collector must refuse.

usage: tls.py CHECK --collector BIN --agent BIN --fixture FAULT_TICKS --certs SCRIPT
CHECK is one of: psk-ecdhe, psk-plain-refused, cbc-sha1-refused, wrong-psk, wrong-identity, name-mismatch.
"""
import argparse
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402

_procs = []


@atexit.register
def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def certs(script):
    """CA, a server certificate for "localhost" and a PSK file (tests/session/tls-certs.sh)."""
    if not shutil.which("openssl"):
        t.skip("openssl is not installed (needed to make the test certificates)")
    d = tempfile.mkdtemp(prefix="rsprof-tls-")
    atexit.register(shutil.rmtree, d, True)
    subprocess.run(["sh", script, d], check=True)
    with open(os.path.join(d, "bad.hex"), "w") as f:
        f.write("ffeeddccbbaa99887766554433221100\n")
    return lambda name: os.path.join(d, name)


def agent(a, *tls):
    """The agent with TLS options on the fixture (5 calls); returns (process, port)."""
    t.require_ptrace()
    d = tempfile.mkdtemp(prefix="rsprof-tls-agent-")
    portfile = os.path.join(d, "port")
    log = open(os.path.join(d, "agent.log"), "w")
    p = subprocess.Popen([a.agent, "--listen", "127.0.0.1:0", "--port-file", portfile, *tls, "--",
                          a.fixture, "5", "0"], stdout=log, stderr=subprocess.STDOUT)
    _procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(portfile) and open(portfile).read().strip():
            return p, int(open(portfile).read())
        time.sleep(0.05)
    t.fail("the agent did not start listening")


def s_server(*args):
    """openssl s_server on a free loopback port, offering only what args allow; returns the port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_2", "-quiet", *args],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _procs.append(p)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        except OSError:
            time.sleep(0.05)
    t.fail("openssl s_server did not start")


def collect(a, host, port, *tls):
    cmd = [a.collector, "--connect", f"{host}:{port}", "--no-progress", "--trace", "fault_tick",
           "--reply-timeout", "5", "--summary", "-", "--log-level", "info", *tls]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def expect_failure(out, pattern, what):
    if out.returncode != 1:
        t.fail(f"{what}: collector exit status {out.returncode}, want 1\n{out.stderr}")
    if not re.search(pattern, out.stderr):
        t.fail(f"{what}: expected /{pattern}/ in:\n{out.stderr}")
    print(f"ok: {what}: " + next(ln for ln in out.stderr.splitlines() if re.search(pattern, ln)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--certs", required=True)
    a = ap.parse_args()
    p = certs(a.certs)
    psk = ["--tls-psk-file", p("psk.hex"), "--tls-psk-identity", "rsprof"]
    if a.check == "psk-ecdhe":
        _, port = agent(a, *psk)
        out = collect(a, "127.0.0.1", port, *psk)
        if out.returncode != 0:
            t.fail(f"PSK session failed ({out.returncode}):\n{out.stderr}")
        m = re.search(r"tls: TLSv1\.2 with (\S+)", out.stderr)
        if not m or not m.group(1).startswith("TLS-ECDHE-PSK-"):
            t.fail(f"the PSK session did not use an ECDHE-PSK suite:\n{out.stderr}")
        if "events: 5 " not in out.stdout:
            t.fail(f"the session over PSK did not trace the 5 calls:\n{out.stdout}")
        print(f"ok: {m.group(1)}")
    elif a.check == "psk-plain-refused":
        port = s_server("-nocert", "-psk", "00112233445566778899aabbccddeeff", "-psk_identity", "rsprof",
                        "-cipher", "PSK-AES128-CBC-SHA256:PSK-AES128-GCM-SHA256")
        expect_failure(collect(a, "127.0.0.1", port, *psk), r"offers no ECDHE-PSK suite",
                       "a server with plain PSK suites only")
    elif a.check == "cbc-sha1-refused":
        port = s_server("-cert", p("server.pem"), "-key", p("server.key"), "-cipher",
                        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        expect_failure(collect(a, "localhost", port, "--tls-ca", p("ca.pem")),
                       r"no cipher suite in common: this collector offers no CBC suite with SHA-1",
                       "a server with CBC-SHA1 suites only")
    elif a.check == "wrong-psk":
        _, port = agent(a, *psk)
        expect_failure(collect(a, "127.0.0.1", port, "--tls-psk-file", p("bad.hex"), "--tls-psk-identity",
                               "rsprof"), r"wrong pre-shared key: .*identity \"rsprof\".*bad\.hex",
                       "a wrong pre-shared key")
    elif a.check == "wrong-identity":
        _, port = agent(a, *psk)
        expect_failure(collect(a, "127.0.0.1", port, "--tls-psk-file", p("psk.hex"), "--tls-psk-identity",
                               "nobody"), r"PSK identity \"nobody\"", "an identity the agent does not know")
    elif a.check == "name-mismatch":
        _, port = agent(a, "--tls-cert", p("server.pem"), "--tls-key", p("server.key"))
        expect_failure(collect(a, "127.0.0.1", port, "--tls-ca", p("ca.pem")),
                       r"certificate is not for \"127\.0\.0\.1\".*presents subject \"CN=localhost\", DNS names: "
                       r"localhost", "a certificate for another name")
    else:
        t.fail(f"unknown check {a.check}")


if __name__ == "__main__":
    main()
