"""rsprof-agent against broken or hostile input (programs that cannot start, files that would block,
misbehaving clients): each case checks that the agent answers, keeps its state and keeps serving."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

from agenttest import (AGENT, Agent, Rsp, check, fail, frame, load_base, parse_stop, require_ptrace, spawn,
                       symbol_offset)

FX_GDB = os.environ["FX_GDB"]
FX_ATTACH = os.environ["FX_ATTACH"]


def vrun(rsp, *argv):
    return rsp.cmd("vRun;" + ";".join(a.encode().hex() for a in argv))


def bad_launch():
    # Without --multi a program that cannot be started is a start-up error: exit 1, say why.
    missing = "/nonexistent/rsprof-no-such-program"
    p = spawn([AGENT, "--listen", "127.0.0.1:0", "--", missing], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("the agent did not exit after failing to start %s" % missing)
    err = err.decode(errors="replace")
    check(p.returncode == 1, "a failed launch exits 1 (got %s)" % p.returncode)
    check(missing in err and "No such file or directory" in err and "Listening" not in err,
          "the message names the program and the reason, before listening: %r" % err.strip())
    not_exec = os.path.join(os.path.dirname(FX_GDB), "CMakeFiles")  # a directory: EACCES
    r = subprocess.run([AGENT, "--listen", "127.0.0.1:0", "--", not_exec], capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 1 and "Permission denied" in r.stderr, "a directory as program: exit 1, EACCES")

    # In --multi mode a bad vRun is an error reply and the agent goes on serving.
    agent = Agent(["--multi"])
    rsp = Rsp(agent.port)
    rsp.handshake()
    r = vrun(rsp, missing)
    check(r.startswith(b"E"), "vRun of a missing program answers an error (%r)" % r)
    check(rsp.cmd("?") == b"W00", "and no process is left behind")
    r = vrun(rsp, FX_GDB)
    check(r.startswith(b"T05"), "a later vRun of a good program works (%r)" % r[:20])
    # An attached program is replaced (killed) by a vRun, even one that then fails.
    proc = spawn([FX_ATTACH, "/dev/null", "100000"], stdout=subprocess.DEVNULL)
    r = rsp.cmd("vAttach;%x" % proc.pid)
    check(r.startswith(b"T"), "vAttach to a running program (%r)" % r[:20])
    r = vrun(rsp, missing)
    check(r.startswith(b"E"), "vRun of a missing program after an attach answers an error")
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        fail("the attached program was not killed by the vRun")
    check(rsp.cmd("?") == b"W00", "no process is left after the failed vRun")
    r = vrun(rsp, FX_GDB)
    check(r.startswith(b"T05"), "and the agent still launches programs")
    check(rsp.cmd("vKill;1") == b"OK", "vKill")
    rsp.close()
    check(agent.proc.poll() is None, "the agent is still running")
    agent.kill()


def vfile_special():
    """vFile:open serves regular files and directories only: a FIFO would block the agent in open()
    (and keep the program stopped), a device could act on being opened."""
    d = tempfile.mkdtemp(prefix="rsprof-vfile.")
    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo)
    sock_path = os.path.join(d, "sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    agent = Agent(["--", FX_GDB])
    rsp = Rsp(agent.port, timeout=15)
    rsp.handshake()
    einval = b"F-1,16"  # gdb's File-I/O EINVAL (22)
    for what, path in (("a FIFO", fifo), ("a character device", "/dev/null"), ("a socket", sock_path)):
        try:
            r = rsp.cmd("vFile:open:%s,0,0" % path.encode().hex())
        except socket.timeout:
            fail("vFile:open of %s got no reply (the agent is blocked)" % what)
        check(r == einval, "vFile:open of %s is refused with EINVAL (%r)" % (what, r))
    r = rsp.cmd("vFile:open:%s,0,0" % d.encode().hex())
    check(r.startswith(b"F") and not r.startswith(b"F-"), "a directory still opens (%r)" % r)
    check(rsp.cmd("vFile:close:%s" % r[1:].decode()) == b"F0", "and closes")
    r = rsp.cmd("vFile:open:%s,0,0" % FX_GDB.encode().hex())
    check(r.startswith(b"F") and not r.startswith(b"F-"), "a regular file opens (%r)" % r)
    fd = r[1:].decode()
    body = rsp.cmd("vFile:pread:%s,4,0" % fd)
    check(body == b"F4;\x7fELF", "and reads (%r)" % body)
    check(rsp.cmd("vFile:close:%s" % fd) == b"F0", "and closes")
    # Errno values on the wire are gdb's, which differ from Linux's for ENAMETOOLONG (91, not 36)
    # and have no EIO or ELOOP (both EUNKNOWN, 9999).
    r = rsp.cmd("vFile:open:%s,0,0" % ("/" + "n" * 300).encode().hex())
    check(r == b"F-1,5b", "a too long file name is gdb's ENAMETOOLONG 0x5b (%r)" % r)
    loop = os.path.join(d, "loop")
    os.symlink(loop, loop)
    r = rsp.cmd("vFile:open:%s,0,0" % loop.encode().hex())
    check(r == b"F-1,270f", "an errno gdb has no number for (ELOOP) is EUNKNOWN 0x270f (%r)" % r)
    os.unlink(loop)
    sig, _ = parse_stop(rsp.cmd("?"))
    check(sig == 5, "the program is still stopped where it was")
    check(len(rsp.cmd("g")) > 100, "and its registers still read")
    rsp.send("k")
    agent.wait()
    listener.close()
    for f in (fifo, sock_path):
        os.unlink(f)
    os.rmdir(d)


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(") ", 1)[1][0]


def bad_signal():
    """A resume with a signal number the agent cannot map to a Linux signal is refused with an error
    reply, and the program stays exactly as it was."""
    agent = Agent(["--", FX_GDB])
    rsp = Rsp(agent.port, timeout=10)
    rsp.handshake()
    pid = int(re.match(rb"QCp([0-9a-f]+)\.", rsp.cmd("qC")).group(1), 16)
    before_stop, before_regs = rsp.cmd("?"), rsp.cmd("g")
    # 0xff, 0x80 and 0x99 are beyond gdb's signal table; 7 is GDB_SIGNAL_EMT, which Linux lacks.
    for packet in ("vCont;Cff", "C80", "S99", "vCont;S99:p%x.%x" % (pid, pid), "C07", "vCont;C07;c",
                   "C80;1234"):
        try:
            r = rsp.cmd(packet)
        except socket.timeout:
            fail("%s got no reply" % packet)
        check(r.startswith(b"E"), "%s is refused with an error reply (%r)" % (packet, r))
        check(proc_state(pid) == "t", "the program is still in its ptrace stop")
        check(rsp.cmd("?") == before_stop, "'?' still reports the same stop")
        check(rsp.cmd("g") == before_regs, "and 'g' the same registers (the PC is untouched)")
    r = rsp.cmd("vCont;c")
    check(r.startswith(b"W07"), "a valid resume then runs the program to its exit (%r)" % r)
    agent.wait()


def no_process_resume():
    """In extended mode with no program, a resume is answered with an error (it used to get no reply
    at all, leaving the client waiting for a stop that could never come)."""
    agent = Agent(["--multi"])
    rsp = Rsp(agent.port, timeout=10)
    rsp.handshake()
    for packet in ("c", "C05", "s", "S05", "vCont;c", "vCont;s:1", "c1234"):
        try:
            r = rsp.cmd(packet)
        except socket.timeout:
            fail("%s without a process got no reply" % packet)
        check(r == b"E01", "%s without a process gets E01 (%r)" % (packet, r))
    check(rsp.cmd("?") == b"W00", "the agent still answers")
    rsp.close()
    agent.kill()


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    fail("no %s in /proc/%d/status" % (field, pid))


def ctxt_switches(pid):
    return status_kb(pid, "voluntary_ctxt_switches") + status_kb(pid, "nonvoluntary_ctxt_switches")


def sanitized(pid):
    """Whether the agent runs with AddressSanitizer (its shadow memory makes RSS meaningless)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def libc_text(pid):
    """Start and size of the largest executable mapping of libc in pid: memory that reads in full."""
    best = (0, 0)
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and "libc.so" in fields[5] and "x" in fields[1]:
                lo, hi = (int(v, 16) for v in fields[0].split("-"))
                best = max(best, (hi - lo, lo))
    check(best[0] >= 0x20000, "libc's text is mapped (%d bytes)" % best[0])
    return best[1], best[0]


def slow_client():
    """A client that stops reading while its requests would produce ~100 MiB of replies (stop replies
    with stack windows, then 64 KiB binary reads): the agent buffers a bounded backlog, stops reading
    requests and stops resuming the program, and after the client reads again every reply arrives,
    complete and in order. The pause is 60 s: nothing may grow or move meanwhile."""
    agent = Agent(["--", os.environ["FX_QUIET"], "1000000"])
    rsp = Rsp(agent.port, timeout=60)
    stall_and_drain(agent, rsp, 60)


def stall_and_drain(agent, rsp, pause_s=15):
    """The body of slow_client on a connected client (test_tls.py runs it over TLS, with a shorter pause)."""
    rsp.handshake()
    pid = int(re.match(rb"QCp([0-9a-f]+)\.", rsp.cmd("qC")).group(1), 16)
    mark = load_base(pid, os.environ["FX_QUIET"]) + symbol_offset(os.environ["FX_QUIET"], "agentfx_mark")
    check(rsp.cmd("Z0,%x,1" % mark) == b"OK", "breakpoint at agentfx_mark")
    check(rsp.cmd("QRsprofStopStack:20000") == b"OK", "stop replies carry up to 128 KiB of stack")
    r = rsp.cmd("vCont;c")  # the dynamic linker runs; the first hit is agentfx_mark(0)
    sig, f = parse_stop(r)
    check(sig == 5 and int.from_bytes(bytes.fromhex(f[5]), "little") == 0, "first stop: agentfx_mark(0)")
    base, size = libc_text(pid)
    stops, reads = 8000, 1500
    # Each read has its own length, so a reply that went missing or out of order shows.
    lengths = [0x10000 - 16 * i for i in range(reads)]
    batch = b"".join(frame("vCont;c") for _ in range(stops))
    batch += b"".join(frame("x%x,%x" % (base + (i * 0x1000) % (size - 0x10000), n)) for i, n in enumerate(lengths))
    agent_pid = agent.proc.pid
    switches = ctxt_switches(pid)
    rsp.send_raw(batch)
    peak, samples = 0, []
    for _ in range(2 * pause_s):
        time.sleep(0.5)
        peak = max(peak, status_kb(agent_pid, "VmRSS"))
        samples.append(ctxt_switches(pid))
    # Every stop is a context switch of the program: fewer than one per queued resume means the agent
    # stopped resuming it, and an unchanged count over the second half of the pause that it stays held.
    ran = samples[-1] - switches
    check(ran < stops, "the agent stopped resuming the program (%d context switches for %d resumes)"
          % (ran, stops))
    check(samples[-1] == samples[len(samples) // 2], "the program stays held while the client does not read")
    check(proc_state(pid) == "t", "the program is in a ptrace stop")
    print("measured: agent VmRSS peak %d kB while the client did not read, VmHWM %d kB"
          % (peak, status_kb(agent_pid, "VmHWM")))
    if sanitized(agent_pid):
        print("note: sanitizer build, RSS not compared")
    else:
        check(peak < 8 * 1024, "the agent's RSS stayed under 8 MB (%d kB)" % peak)
    for i in range(1, stops + 1):
        sig, f = parse_stop(rsp.recv())
        arg = int.from_bytes(bytes.fromhex(f.get(5, "00")), "little") if sig == 5 else -1
        if arg != i:
            fail("stop reply %d is for call %d (signal %s): a reply was lost or reordered" % (i, arg, sig))
    print("ok: %d stop replies arrived complete and in order" % stops)
    for i, n in enumerate(lengths):
        r = rsp.recv()
        if r[:1] != b"b" or len(r) != n + 1:
            fail("read %d: expected %d bytes, got %d (%r...)" % (i, n, len(r) - 1, r[:20]))
    print("ok: %d binary reads arrived complete and in order" % reads)
    check(rsp.cmd("qC").startswith(b"QC"), "the stream is in step afterwards")
    rsp.send("k")
    agent.wait()


def wait_closed(sock, what):
    """Reads until the agent closes sock (it sends nothing to a silent peer)."""
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        fail("%s was never disconnected" % what)
    except ConnectionError:
        pass


def idle_timeout():
    """A peer that connects and sends nothing valid holds the agent's one client slot only until the
    idle timeout (here --idle-timeout 1); it was never a client, so the launched program lives on.
    A client that spoke in time may then be silent as long as it likes."""
    agent = Agent(["--idle-timeout", "1", "--", FX_GDB])
    idle = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    garbage = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    check(garbage.recv(10) == b"", "a second connection is refused while the idle one holds the slot")
    garbage.close()
    idle.sendall(b"+++garbage$qC#00")  # acks, noise and a bad checksum are not a valid packet
    wait_closed(idle, "a peer sending nothing valid")
    print("ok: the silent peer was disconnected")
    idle.close()
    check(agent.proc.poll() is None, "the agent did not treat it as its client leaving")
    rsp = None
    for _ in range(100):  # the agent may still be closing the idle connection
        try:
            rsp = Rsp(agent.port, timeout=10)
            rsp.handshake()
            break
        except (ConnectionError, EOFError):
            rsp = None
            time.sleep(0.05)
    check(rsp is not None, "the slot is free again: a new client is served")
    sig, _ = parse_stop(rsp.cmd("?"))
    check(sig == 5, "the launched program is still there, stopped at its start")
    time.sleep(2.5)  # longer than the timeout: a client that spoke is not idle-timed out
    check(rsp.cmd("qC").startswith(b"QC"), "a client that spoke in time may stay silent past the timeout")
    rsp.send("k")
    agent.wait()
    r = subprocess.run([AGENT, "--help"], capture_output=True, text=True)
    check("--idle-timeout SECONDS" in r.stdout and "default 10" in r.stdout, "--help documents it")
    r = subprocess.run([AGENT, "--idle-timeout", "x", "--listen", "127.0.0.1:0", "--", FX_GDB],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and "--idle-timeout" in r.stderr, "a bad value is a usage error")


TESTS = [bad_launch, vfile_special, bad_signal, no_process_resume, slow_client, idle_timeout]

if __name__ == "__main__":
    require_ptrace()
    {f.__name__: f for f in TESTS}[sys.argv[1]]()
