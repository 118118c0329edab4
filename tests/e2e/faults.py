#!/usr/bin/env python3
"""Fault tests: the agent, the collector or the link fails in the middle of a trace, and the collector still
writes what it collected, exits with status 1 and a message, and the traced program is never left stopped.

usage: faults.py CHECK --collector BIN --agent BIN --fixture FAULT_TICKS
CHECK is one of: agent-sigkill, collector-sigkill, collector-sigkill-attach, collector-sigstop, probe,
silent-server, silent-after-qsupported, silent-mid-trace, sigterm, sigterm-silent, sigterm-negotiating.
"""
import argparse
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402

REPLY_TIMEOUT = 2  # seconds, given to every collector run as --reply-timeout
_procs = []  # killed at exit, so that a failing test leaves nothing behind
_programs = []  # traced programs by pid: one the collector detached from outlives the agent


@atexit.register
def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for pid in _programs:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    _procs.append(p)
    return p


class Agent:
    """rsprof-agent on a loopback port: launching a program (argv) or attached to one (attach=PID)."""

    def __init__(self, agent, argv=(), attach=None):
        self.tmp = tempfile.mkdtemp(prefix="rsprof-faults-")
        self.log = open(os.path.join(self.tmp, "agent.log"), "w+")
        portfile = os.path.join(self.tmp, "port")
        cmd = [agent, "--listen", "127.0.0.1:0", "--port-file", portfile]
        cmd += ["--attach", str(attach)] if attach else ["--", *argv]
        self.proc = spawn(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline and self.port is None and self.proc.poll() is None:
            if os.path.exists(portfile) and open(portfile).read().strip():
                self.port = int(open(portfile).read())
            time.sleep(0.05)
        if self.port is None:
            t.fail(f"the agent did not start listening: {self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def program_pid(self):
        """The pid of the program the agent launched (its only child)."""
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                kids = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
            except OSError:
                kids = []
            if kids:
                _programs.append(int(kids[0]))
                return int(kids[0])
            time.sleep(0.05)
        t.fail("the agent has no child process")


def proc_state(pid):
    """The state letter of /proc/PID/stat, or None once the process is gone."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def tracer_pid(pid):
    """TracerPid from /proc/PID/status (0: not traced), or None once the process is gone."""
    try:
        m = re.search(r"^TracerPid:\s*(\d+)", open(f"/proc/{pid}/status").read(), re.M)
    except OSError:
        return None
    return int(m.group(1))


def expect_not_stopped(pid, what, settle=10):
    """The program is running, a zombie or gone; a stop ('t' traced, 'T') may last only while the agent or the
    kernel catches up (settle seconds)."""
    deadline = time.time() + settle
    while True:
        state = proc_state(pid)
        if state not in ("t", "T"):
            return state
        if time.time() > deadline:
            t.fail(f"{what}: the traced program {pid} is left stopped (state {state})")
        time.sleep(0.1)


def expect_gone(pid, what, within=10):
    deadline = time.time() + within
    while proc_state(pid) not in (None, "Z", "X"):
        if time.time() > deadline:
            t.fail(f"{what}: program {pid} still exists (state {proc_state(pid)})")
        time.sleep(0.1)


class Collector:
    def __init__(self, a, port, *extra):
        self.tmp = tempfile.mkdtemp(prefix="rsprof-faults-col-")
        self.prof = os.path.join(self.tmp, "p.drcctprof")
        self.summ = os.path.join(self.tmp, "s.json")
        self.cmd = [a.collector, "--connect", f"127.0.0.1:{port}", "--no-progress", "--trace", "fault_tick",
                    "--reply-timeout", str(REPLY_TIMEOUT), "-o", self.prof, "--summary-json", self.summ, *extra]
        self.err = open(os.path.join(self.tmp, "stderr"), "w+")
        self.proc = spawn(self.cmd, stdout=subprocess.DEVNULL, stderr=self.err)
        self.start = time.time()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def wait(self, within, what):
        """Waits for the exit; fails unless it comes within `within` seconds. Returns (status, seconds)."""
        t0 = time.time()
        try:
            rc = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            t.fail(f"{what}: the collector did not exit within {within} s\n{self.stderr()}")
        return rc, time.time() - t0

    def calls(self, a):
        """Calls of fault_tick in the written profile (which must be a valid drcctprof file)."""
        if not os.path.exists(self.prof):
            t.fail(f"no profile was written\n{self.stderr()}")
        total = 0
        for line in t.report(a.collector, self.prof, "folded", "--metric", "calls").splitlines():
            stack, _, value = line.rpartition(" ")
            if stack.split(";")[-1] == "fault_tick":
                total += int(value)
        return total

    def summary(self):
        return json.load(open(self.summ))


def expect_eq(what, got, want):
    if got != want:
        t.fail(f"{what}: got {got!r}, want {want!r}")


def expect_in(what, needle, text):
    if not re.search(needle, text):
        t.fail(f"{what}: expected /{needle}/ in:\n{text}")


def wait_for_events(col, seconds):
    """Lets the trace run for a while (the collector must still be running afterwards)."""
    time.sleep(seconds)
    if col.proc.poll() is not None:
        t.fail(f"the collector ended before the fault was injected ({col.proc.returncode})\n{col.stderr()}")


# ---- the server dies or falls silent ----

def check_agent_sigkill(a):
    ag = Agent(a.agent, [a.fixture, "1000000", "1000"])
    pid = ag.program_pid()
    col = Collector(a, ag.port)
    wait_for_events(col, 3)
    ag.proc.kill()
    rc, secs = col.wait(REPLY_TIMEOUT + 5, "agent killed")
    expect_eq("collector exit status after the agent died", rc, 1)
    expect_in("message after the agent died", r"tracing stopped early: connection closed", col.stderr())
    n = col.calls(a)
    if n <= 0:
        t.fail("the partial profile has no calls")
    expect_not_stopped(pid, "agent killed")
    expect_gone(pid, "agent killed (PTRACE_O_EXITKILL)")
    print(f"ok: {n} calls in the partial profile; the collector exited {secs:.2f} s after the agent died")


class SilentServer:
    """Accepts connections and never answers (qsupported=True: answers qSupported first)."""

    def __init__(self, qsupported):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.qsupported = qsupported
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            c, _ = self.sock.accept()
            self.conns.append(c)
            if self.qsupported:
                data = b""
                while b"#" not in data:
                    data += c.recv(4096)
                body = b"PacketSize=4000;QStartNoAckMode+"
                c.sendall(b"+$" + body + b"#%02x" % (sum(body) & 0xff))


def check_silent_server(a, qsupported=False):
    srv = SilentServer(qsupported)
    col = Collector(a, srv.port)
    rc, secs = col.wait(REPLY_TIMEOUT + 4, "silent server")
    expect_eq("collector exit status with a silent server", rc, 1)
    expect_in("message with a silent server", r"timed out", col.stderr())
    expect_eq("calls in the (empty) profile", col.calls(a), 0)
    print(f"ok: exit 1 after {secs:.2f} s (--reply-timeout {REPLY_TIMEOUT})")


def check_sigterm_while_negotiating(a):
    """SIGTERM while the collector waits for a silent server's first reply, with a reply timeout far beyond 5 s."""
    srv = SilentServer(False)
    col = Collector(a, srv.port, "--reply-timeout", "60")
    time.sleep(1)
    if col.proc.poll() is not None:
        t.fail(f"the collector ended before the SIGTERM\n{col.stderr()}")
    col.proc.send_signal(signal.SIGTERM)
    rc, secs = col.wait(5, "SIGTERM while negotiating")
    expect_eq("collector exit status after SIGTERM", rc, 1)
    expect_in("message after SIGTERM", r"interrupted by SIGTERM; wrote the 0 events collected so far", col.stderr())
    expect_eq("calls in the (empty) profile", col.calls(a), 0)
    print(f"ok: exit 1 {secs:.2f} s after SIGTERM")


class Relay:
    """Forwards between the collector and the agent until mute() is called; then forwards nothing more in
    either direction but keeps both connections open: a server that hangs without closing."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.upstream = port
        self.muted = threading.Event()
        self.pair = []
        threading.Thread(target=self.serve, daemon=True).start()

    def pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.muted.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass

    def serve(self):
        c, _ = self.sock.accept()
        u = socket.create_connection(("127.0.0.1", self.upstream))
        self.pair = [c, u]
        threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
        threading.Thread(target=self.pump, args=(u, c), daemon=True).start()

    def mute(self):
        self.muted.set()

    def close(self):
        for s in self.pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def check_silent_mid_trace(a):
    """The link hangs while the program runs with a stop every millisecond: some wait for a reply or for the
    liveness probe's stop runs out."""
    ag = Agent(a.agent, [a.fixture, "1000000", "1000"])
    pid = ag.program_pid()
    relay = Relay(ag.port)
    col = Collector(a, relay.port)
    wait_for_events(col, 3)
    relay.mute()
    # A request in flight waits --reply-timeout; a wait for a stop needs --reply-timeout of silence and
    # --reply-timeout more for the probe; then the profile is written, symbolized with libc's debug files
    # (seconds on a loaded machine). The bound proves the collector does not wait for ever.
    rc, secs = col.wait(2 * REPLY_TIMEOUT + 15, "link hung mid-trace")
    expect_eq("collector exit status after the link hung", rc, 1)
    expect_in("message after the link hung", r"timed out|taking it for dead", col.stderr())
    n = col.calls(a)
    if n <= 0:
        t.fail("the partial profile has no calls")
    relay.close()  # the agent sees its client leave and kills the program it launched
    expect_not_stopped(pid, "link hung mid-trace")
    expect_gone(pid, "link hung mid-trace, then closed")
    print(f"ok: {n} calls; the collector exited {secs:.2f} s after the link hung")


def check_probe(a):
    """A program that runs for longer than --reply-timeout between stops is not mistaken for a dead server: the
    collector interrupts it to check, resumes it without passing the interrupt on, and counts exactly."""
    ag = Agent(a.agent, [a.fixture, "4", str(int(REPLY_TIMEOUT * 1.6 * 1e6))])
    col = Collector(a, ag.port, "--log-level", "debug")
    rc, secs = col.wait(60, "long silence between stops")
    expect_eq("collector exit status", rc, 0)
    expect_in("a liveness probe was sent", r"interrupting the program to check that the server is alive",
              col.stderr())
    expect_eq("calls of fault_tick", col.calls(a), 4)
    s = col.summary()["program"]
    expect_eq("program ended normally", (s["ended"], s["exit_code"]), (True, 0))
    expect_in("the program's own count", r"ticks=4", ag.output())
    print(f"ok: 4 calls counted across silences of {REPLY_TIMEOUT * 1.6:.1f} s, in {secs:.1f} s")


# ---- the collector dies, stops or is told to stop ----

def check_collector_sigkill(a):
    ag = Agent(a.agent, [a.fixture, "1000000", "1000"])
    pid = ag.program_pid()
    col = Collector(a, ag.port)
    wait_for_events(col, 3)
    col.proc.kill()
    col.proc.wait()
    expect_not_stopped(pid, "collector killed")
    expect_gone(pid, "collector killed: the agent kills the program it launched")
    print("ok: the launched program was killed when its collector died")


def tick_address(fixture):
    out = subprocess.run(["nm", fixture], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) T fault_tick$", out, re.M)
    if not m:
        t.fail("fault_tick not found in the fixture's symbols")
    return int(m.group(1), 16)


def first_byte(pid, addr):
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(addr)
        return mem.read(1)[0]


def check_collector_sigkill_attach(a):
    n = 20000
    prog = spawn([a.fixture, str(n), "500"], stdout=subprocess.PIPE, text=True)
    prog.stdout.readline()  # "started"
    addr = tick_address(a.fixture)  # the fixture is not position-independent: the symbol is the address
    ag = Agent(a.agent, attach=prog.pid)
    col = Collector(a, ag.port)
    wait_for_events(col, 3)
    # While traced, the breakpoint byte is there (else the check after the kill would prove nothing).
    for _ in range(50):
        if first_byte(prog.pid, addr) == 0xCC:
            break
        time.sleep(0.02)
    else:
        t.fail(f"no breakpoint byte at fault_tick (0x{addr:x}) while the collector traced it")
    col.proc.kill()
    col.proc.wait()
    # A traced program that sleeps shows 'S' too: the agent has let go once the program has no tracer.
    deadline = time.time() + 10
    while tracer_pid(prog.pid) not in (0, None):
        if time.time() > deadline:
            t.fail(f"the agent did not detach from {prog.pid} after its collector died\n{ag.output()}")
        time.sleep(0.05)
    state = expect_not_stopped(prog.pid, "collector killed while attached")
    if state in (None, "Z"):
        t.fail("the attached program died with the collector")
    first = first_byte(prog.pid, addr)
    if first == 0xCC:
        t.fail(f"a breakpoint byte (0xcc) is left at fault_tick (0x{addr:x}) after the collector died")
    try:
        out, _ = prog.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        t.fail("the attached program did not finish")
    expect_eq("attached program's exit status", prog.returncode, 0)
    expect_in("attached program's own count", rf"ticks={n}", out)
    print(f"ok: detached cleanly (state {state}, byte 0x{first:02x} at fault_tick), the program finished")


def check_collector_sigstop(a):
    n = 400
    ag = Agent(a.agent, [a.fixture, str(n), "10000"])
    pid = ag.program_pid()
    col = Collector(a, ag.port)
    wait_for_events(col, 1.5)
    col.proc.send_signal(signal.SIGSTOP)
    time.sleep(10)
    col.proc.send_signal(signal.SIGCONT)
    rc, secs = col.wait(120, "collector stopped for 10 s")
    expect_eq(f"collector exit status after SIGSTOP/SIGCONT\n{col.stderr()}", rc, 0)
    expect_eq("calls of fault_tick", col.calls(a), n)
    s = col.summary()["program"]
    expect_eq("program ended normally", (s["ended"], s["exit_code"]), (True, 0))
    expect_not_stopped(pid, "collector stopped and continued")
    expect_in("the program's own count", rf"ticks={n}", ag.output())
    print(f"ok: {n} calls counted exactly across a 10 s SIGSTOP")


def check_sigterm(a, silent=False):
    ag = Agent(a.agent, [a.fixture, "1000000", "1000"])
    pid = ag.program_pid()
    relay = Relay(ag.port)
    col = Collector(a, relay.port)
    wait_for_events(col, 3)
    if silent:
        relay.mute()
        time.sleep(0.5)
    col.proc.send_signal(signal.SIGTERM)
    rc, secs = col.wait(5, "SIGTERM")
    expect_eq("collector exit status after SIGTERM", rc, 1)
    expect_in("message after SIGTERM", r"interrupted by SIGTERM; wrote the [1-9]\d* events collected so far",
              col.stderr())
    n = col.calls(a)
    if n <= 0:
        t.fail("the partial profile has no calls")
    if silent:
        relay.close()  # the agent's client is gone: it kills the program it launched
        expect_not_stopped(pid, "SIGTERM with a silent server")
        expect_gone(pid, "SIGTERM with a silent server, then the link closed")
    else:
        # The collector removed its breakpoints and detached: the program runs on.
        state = expect_not_stopped(pid, "SIGTERM", settle=2)
        if state in (None, "Z"):
            t.fail("the program did not survive the detach")
        os.kill(pid, signal.SIGKILL)
    print(f"ok: exit 1 {secs:.2f} s after SIGTERM with {n} calls written")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--fixture", required=True)
    a = ap.parse_args()
    checks = {
        "agent-sigkill": check_agent_sigkill,
        "silent-server": lambda a: check_silent_server(a, False),
        "silent-after-qsupported": lambda a: check_silent_server(a, True),
        "silent-mid-trace": check_silent_mid_trace,
        "probe": check_probe,
        "collector-sigkill": check_collector_sigkill,
        "collector-sigkill-attach": check_collector_sigkill_attach,
        "collector-sigstop": check_collector_sigstop,
        "sigterm": check_sigterm,
        "sigterm-silent": lambda a: check_sigterm(a, True),
        "sigterm-negotiating": check_sigterm_while_negotiating,
    }
    if a.check not in ("silent-server", "silent-after-qsupported", "sigterm-negotiating"):
        t.require_ptrace()
    checks[a.check](a)


if __name__ == "__main__":
    main()
