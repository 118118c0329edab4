"""Shared pieces of the end-to-end tests: start an agent or gdbserver, run the collector, run gdb for reference."""
import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def skip(reason):
    print(f"skipped: {reason}")
    sys.exit(SKIP)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def require_ptrace():
    """Skips the test (exit 77, with the reason) when this machine forbids ptrace."""
    try:
        out = subprocess.run(["gdb", "-nx", "-batch", "-ex", "run", "--args", "/bin/true"],
                             capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        skip("gdb is not installed")
    if "exited normally" not in out.stdout + out.stderr:
        skip("ptrace is not permitted here: " + (out.stderr.strip().splitlines() or ["?"])[-1])


class Server:
    """An rsprof-agent or gdbserver serving one program on a loopback port chosen by the kernel."""

    live = []  # closed at exit, so a failing or timed-out test leaves no server (or traced program) behind

    def __init__(self, kind, agent, argv, extra=(), stdout=None):
        """stdout: a file for the program's output (default: the server's log, with the server's messages)."""
        self.tmp = tempfile.mkdtemp(prefix="rsprof-e2e-")
        self.log = open(os.path.join(self.tmp, "server.log"), "w+")
        if kind == "agent":
            portfile = os.path.join(self.tmp, "port")
            cmd = [agent, "--listen", "127.0.0.1:0", "--port-file", portfile, *extra, "--", *argv]
        else:
            portfile = None
            cmd = ["gdbserver", "--once", "127.0.0.1:0", *argv]
        self.proc = subprocess.Popen(cmd, stdout=stdout or self.log,
                                     stderr=self.log if stdout else subprocess.STDOUT)
        Server.live.append(self)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline and self.port is None:
            if portfile and os.path.exists(portfile):
                text = open(portfile).read().strip()
                if text:
                    self.port = int(text)
            self.log.seek(0)
            m = re.search(r"Listening on port (\d+)", self.log.read())
            if m:
                self.port = int(m.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            self.log.seek(0)
            fail(f"{kind} did not start listening: {self.log.read()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("server did not exit")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # the agent's program dies with it (PTRACE_O_EXITKILL)
                self.proc.wait()


@atexit.register
def _close_servers():
    for srv in Server.live:
        srv.close()


def collector(binary, port, *args, timeout=120, check=True, host="127.0.0.1"):
    cmd = [binary, "--connect", f"{host}:{port}", "--no-progress", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        fail(f"collector exited {out.returncode}: {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    return out


GDB_FRAME_HEAD = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?")


def gdb_frame(line):
    """(function, 'file:line' or None) from one line of gdb's bt.

    Function names may hold spaces and parentheses (C++ and Rust generics such as call_once<fn(), ()>), so
    the argument list is found from the end: the last balanced '(...)' before ' at FILE:LINE' / ' from LIB'.
    """
    m = GDB_FRAME_HEAD.match(line)
    if not m:
        return None
    rest = line[m.end():]
    where = None
    loc = re.search(r"\) at (\S+):(\d+)$", rest)
    if loc:
        where = f"{os.path.basename(loc.group(1))}:{loc.group(2)}"
        rest = rest[:loc.start() + 1]
    else:
        rest = re.sub(r"\) from \S+$", ")", rest)
    if not rest.endswith(")"):
        return None
    depth = 0
    for i in range(len(rest) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(rest[i], 0)
        if depth == 0:
            return rest[:i].rstrip(), where
    return None


def gdb_stacks(argv, breakpoint, max_stops, remote_port=None, system_debug=False, gdb="gdb", setup=(),
               remote_exec=None, host="127.0.0.1", timeout=300):
    """Runs gdb with a breakpoint whose command list prints bt and continues; returns one frame list per stop.

    gdb and setup: another gdb (gdb-multiarch) and commands run first (set architecture, set sysroot);
    remote_exec: run that program through an agent in extended mode (target extended-remote) at remote_port.

    The breakpoint is at the function's first instruction, where the collector stops (a plain 'break FUNC'
    would skip the prologue); a function in a library loaded later is armed at the next library load.
    Without system_debug gdb does not read /usr/lib/debug (run the collector with --system-debug-dir '')."""
    script = tempfile.NamedTemporaryFile("w", suffix=".gdb", delete=False)
    script.write("set pagination off\nset confirm off\nset width 0\nset backtrace past-main on\n")
    script.write(f"""python
import gdb
armed = []
def arm():
    if armed:
        return
    try:
        gdb.execute("break *{breakpoint}", to_string=True)
    except gdb.error:
        return
    bp = gdb.breakpoints()[-1]
    bp.commands = "silent\\necho ===STOP===\\\\n\\nbt\\ncontinue"
    armed.append(bp)
arm()
if not armed:
    gdb.execute("catch load")
    gdb.breakpoints()[-1].commands = "silent\\npython arm()\\ncontinue"
end
""")
    if remote_exec:
        script.write(f"target extended-remote {host}:{remote_port}\nset remote exec-file {remote_exec}\n"
                     f"run {' '.join(argv[1:])}\n")
    else:
        script.write(f"target remote {host}:{remote_port}\ncontinue\n" if remote_port else "run\n")
    script.close()
    cmd = [gdb, "-nx", "-batch", "-iex", "set auto-load safe-path /"]
    for line in setup:
        cmd += ["-iex", line]
    if not system_debug:
        cmd += ["-iex", "set debug-file-directory /nonexistent"]
    cmd += ["-x", script.name]
    cmd += ([argv[0]] if remote_port else ["--args", *argv])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    stacks = []
    for block in out.stdout.split("===STOP===")[1:]:
        frames = []
        for line in block.splitlines():
            if line.startswith("#"):
                f = gdb_frame(line)
                if f:
                    frames.append(f)
        stacks.append(frames)
        if len(stacks) >= max_stops:
            break
    os.unlink(script.name)
    return stacks, out


def collector_stacks(path):
    """Parses --print-stacks output: one list of (function, 'file:line' or None) per event."""
    stacks, cur = [], None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("event "):
            cur = []
            stacks.append(cur)
        elif line.startswith("#") and cur is not None:
            m = re.match(r"^#\d+ 0x[0-9a-f]+ (.*?)(?: at (\S+):(\d+))?$", line)
            if m:
                where = f"{os.path.basename(m.group(2))}:{m.group(3)}" if m.group(2) else None
                cur.append((m.group(1), where))
            elif "[truncated]" in line:
                cur.append(("[truncated]", None))
    return stacks


UNNAMED_FRAME = re.compile(r"^[^/\s]+\+0x[0-9a-f]+$")


def compare_stacks(ours, theirs, label, min_events=50):
    """Every gdb stack must equal ours frame by frame (function and file:line, or the lack of one), down to
    gdb's outermost frame."""
    if len(theirs) < min_events:
        fail(f"{label}: gdb stopped only {len(theirs)} times (need {min_events})")
    if len(ours) < len(theirs):
        fail(f"{label}: collector saw {len(ours)} events, gdb {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if len(a) < len(b):
            fail(f"{label}: event {i}: collector has {len(a)} frames, gdb {len(b)}\nours:  {a}\ngdb:   {b}")
        for k, (fa, fb) in enumerate(zip(a, b)):
            if fb == ("??", None) and fa[1] is None and UNNAMED_FRAME.match(fa[0]):
                continue  # gdb has no name for the frame either; ours is module+offset
            if fa != fb:
                fail(f"{label}: event {i} frame {k}: collector {fa} != gdb {fb}\nours: {a}\ngdb:  {b}")
    print(f"{label}: {len(theirs)} stops, all stacks equal gdb's bt "
          f"({sum(len(s) for s in theirs[:len(theirs)])} frames compared)")


def valgrind_heap_totals(argv, env=None):
    """(allocs, frees, bytes allocated) from valgrind's 'total heap usage' line for the same program and input."""
    # --run-libc-freeres=no: by default valgrind calls glibc's __libc_freeres at exit, which frees the cached
    # thread stacks' TLS blocks; the program itself never makes those calls, so no tracer can see them.
    # --run-cxx-freeres=no likewise: libstdc++'s emergency pool is freed only by valgrind's call at exit.
    out = subprocess.run(["valgrind", "--tool=memcheck", "--leak-check=no", "--run-libc-freeres=no",
                          "--run-cxx-freeres=no", *argv],
                         capture_output=True,
                         text=True, timeout=600, env=env)
    m = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated", out.stderr)
    if not m:
        fail("no heap totals from valgrind:\n" + out.stderr[-2000:])
    return tuple(int(g.replace(",", "")) for g in m.groups())


def report(binary, profile, fmt, *extra):
    out = subprocess.run([binary, "report", profile, "--format", fmt, *extra], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        fail(f"report {fmt} failed ({out.returncode}): {out.stderr}")
    return out.stdout
