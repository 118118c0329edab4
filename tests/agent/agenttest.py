"""Helpers for the agent's integration tests: start the agent on port 0, a minimal RSP client,
running gdb in batch mode, and the ptrace availability probe (exit 77 with a reason when missing)."""
import atexit
import ctypes
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

AGENT = os.environ.get("AGENT", "")
SKIP = 77
_children = []  # processes a failing test must not leave behind


@atexit.register
def _cleanup():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


def spawn(cmd, **kw):
    """Starts a helper process that is killed when the test ends, whatever the outcome."""
    p = subprocess.Popen(cmd, **kw)
    _children.append(p)
    return p


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


def require_ptrace():
    """Exits 77 when this machine does not let us trace a child process."""
    libc = ctypes.CDLL(None, use_errno=True)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if libc.ptrace(0, 0, 0, 0) == 0 else 1)  # PTRACE_TRACEME
    _, st = os.waitpid(pid, 0)
    if not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
        print("SKIP: ptrace is not available here (PTRACE_TRACEME failed)")
        sys.exit(SKIP)


def require_gdb():
    try:
        subprocess.run(["gdb", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        print("SKIP: gdb is not installed")
        sys.exit(SKIP)


class Agent:
    """An rsprof-agent process listening on a free loopback port."""

    def __init__(self, args, stdout=subprocess.PIPE, extra_env=None):
        self.dir = tempfile.mkdtemp(prefix="rsprof-agent-test.")
        self.port_file = os.path.join(self.dir, "port")
        cmd = [AGENT, "--listen", "127.0.0.1:0", "--port-file", self.port_file] + args
        self.proc = spawn(cmd, stdout=stdout, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                fail("agent exited early (%s): %s" % (self.proc.returncode, err))
            if time.time() > deadline:
                self.proc.kill()
                fail("agent did not start listening")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def wait(self, timeout=30):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            fail("agent did not exit in time; stderr: " + err.decode(errors="replace"))
        self.stdout = out.decode(errors="replace") if out else ""
        self.stderr = err.decode(errors="replace") if err else ""
        self.check_sanitizers()
        return self.proc.returncode

    def check_sanitizers(self):
        """Fails on any sanitizer report (the suite also runs against an ASan/UBSan agent)."""
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in self.stderr:
                fail("sanitizer report from the agent:\n" + self.stderr[-4000:])

    def kill(self):
        """Stops the agent with SIGTERM (so sanitizers can report), then SIGKILL if needed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read() if self.proc.stderr else b""
        self.stderr = err.decode(errors="replace")
        self.check_sanitizers()


def checksum(data):
    return sum(data) & 0xFF


def frame(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return b"$" + payload + b"#" + b"%02x" % checksum(payload)


def unescape(data):
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x7D and i + 1 < len(data):
            out.append(data[i + 1] ^ 0x20)
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


class Rsp:
    """A small RSP client: frames packets, handles acks, returns unescaped reply payloads."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.ack = True

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, payload):
        self.sock.sendall(frame(payload))

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("agent closed the connection")
        self.buf += chunk

    def recv_byte_events(self):
        """Returns the next ack character ('+'/'-') or None if a packet starts next."""
        while not self.buf:
            self._fill()
        c = self.buf[:1]
        if c in (b"+", b"-"):
            self.buf = self.buf[1:]
            return c.decode()
        return None

    def recv(self):
        while True:
            while not self.buf:
                self._fill()
            if self.buf[:1] in (b"+", b"-"):
                self.buf = self.buf[1:]
                continue
            start = self.buf.find(b"$")
            if start < 0:
                self.buf = b""
                continue
            end = self.buf.find(b"#", start)
            while end < 0 or len(self.buf) < end + 3:
                self._fill()
                end = self.buf.find(b"#", start)
            body = self.buf[start + 1:end]
            cs = int(self.buf[end + 1:end + 3], 16)
            self.buf = self.buf[end + 3:]
            if checksum(body) != cs:
                fail("bad checksum from agent")
            if self.ack:
                self.sock.sendall(b"+")
            return unescape(body)

    def cmd(self, payload):
        self.send(payload)
        return self.recv()

    def handshake(self, features="multiprocess+;swbreak+"):
        sup = self.cmd("qSupported:" + features)
        if self.cmd("QStartNoAckMode") != b"OK":
            fail("QStartNoAckMode refused")
        self.ack = False
        return sup


def parse_stop(reply):
    """Splits a T stop reply into (signal, {key: value}) with register numbers as int keys."""
    text = reply.decode(errors="replace")
    if not text.startswith("T"):
        return None, {}
    sig = int(text[1:3], 16)
    fields = {}
    for part in text[3:].split(";"):
        if not part:
            continue
        k, _, v = part.partition(":")
        try:
            fields[int(k, 16)] = v
        except ValueError:
            fields[k] = v
    return sig, fields


def le64(hexstr):
    return int.from_bytes(bytes.fromhex(hexstr), "little")


def symbol_offset(binary, name):
    """Offset of a function symbol in a PIE binary (from nm)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    fail("symbol %s not found in %s" % (name, binary))


def load_base(pid, binary):
    """Load address of the executable's first mapping in the live process."""
    real = os.path.realpath(binary)
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == real and fields[2] == "00000000":
                return int(fields[0].split("-")[0], 16)
    fail("executable mapping not found for pid %d" % pid)


def gdb_batch(binary, commands, pre=(), timeout=60):
    cmd = ["gdb", "-nx", "-batch", "-iex", "set debug-file-directory /nonexistent",
           "-iex", "set auto-load safe-path /"]
    for c in pre:
        cmd += ["-iex", c]
    for c in commands:
        cmd += ["-ex", c]
    if binary:
        cmd.append(binary)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.stdout + r.stderr


def normalize_bt(text):
    """The frames of a 'bt', with addresses replaced (ASLR differs between runs)."""
    frames = [l for l in text.splitlines() if re.match(r"#\d+ ", l)]
    return [re.sub(r"0x[0-9a-f]+", "ADDR", l) for l in frames]
