"""rsprof-agent driven by a small RSP client: exact breakpoint accounting with threads (emulated and
single-stepped step-over), attach/detach, the packets the collector relies on (expedited registers,
binary reads, pipelining, qXfer, vFile), robustness against malformed traffic, and disconnects."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from agenttest import (Agent, Rsp, spawn, check, fail, frame, le64, load_base, parse_stop, require_ptrace,
                       symbol_offset)

FX_GDB = os.environ["FX_GDB"]
FX_THREADS = os.environ["FX_THREADS"]
FX_ATTACH = os.environ["FX_ATTACH"]
FX_QUIET = os.environ["FX_QUIET"]
RIP = 0x10


def pid_of(rsp):
    qc = rsp.cmd("qC").decode()
    m = re.match(r"QCp([0-9a-f]+)\.([0-9a-f]+)", qc)
    if not m:
        fail("unexpected qC reply " + qc)
    return int(m.group(1), 16)


def non_emulated_address(binary, func):
    """Address (offset) of the first instruction in func that the agent cannot emulate, so passing
    a breakpoint there needs a real single step."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True,
                         text=True, check=True).stdout
    body = out.split("<%s>:" % func, 1)[1].split("\n\n", 1)[0]
    for line in body.strip().splitlines():
        addr, _, insn = line.partition(":")
        insn = insn.strip()
        # What the agent emulates (ptrace-x86_64.c): register-to-register mov and test among them.
        if not re.match(r"(push|endbr64|nop|(mov|test)\s+%\w+,%\w+$|sub\s+\$0x[0-9a-f]+,%rsp)", insn):
            return int(addr.strip(), 16)
    fail("no suitable instruction in " + func)


def serve_threads_fixture():
    """An agent serving the 4-thread fixture, a handshaken client, and the executable's load address."""
    agent = Agent(["--", FX_THREADS])
    rsp = Rsp(agent.port)
    rsp.handshake()
    # The executable is mapped at exec time; breakpoints go at its addresses in this run.
    return agent, rsp, load_base(pid_of(rsp), FX_THREADS)


def continue_until_exit(rsp, on_stop, max_stops):
    """Continues, handing every stop reply to on_stop, until the exit reply (returned; None past max_stops)."""
    for _ in range(max_stops):
        reply = rsp.cmd("vCont;c")
        if reply.startswith(b"W"):
            return reply
        on_stop(reply)
    return None


def count_hits(offset_of):
    agent, rsp, base = serve_threads_fixture()
    addr = base + offset_of
    check(rsp.cmd("Z0,%x,1" % addr) == b"OK", "breakpoint inserted at 0x%x" % addr)
    check(rsp.cmd("Z0,%x,1" % addr) == b"OK", "a repeated Z0 is accepted (reference counted)")
    mem = rsp.cmd("m%x,1" % addr)
    check(mem != b"cc", "memory reads do not show the breakpoint byte")
    per_thread = {}

    def on_stop(reply):
        sig, f = parse_stop(reply)
        if sig != 5 or "swbreak" not in f or le64(f[RIP]) != addr:
            fail("unexpected stop: %r" % reply[:200])
        per_thread[f["thread"]] = per_thread.get(f["thread"], 0) + 1

    exit_reply = continue_until_exit(rsp, on_stop, 10000)
    total = sum(per_thread.values())
    print("hits per thread:", sorted(per_thread.values()))
    check(exit_reply is not None and exit_reply.startswith(b"W00"), "the program exited with status 0 "
          "(its own counters agree)")
    check(total == 4000, "exactly 4000 breakpoint stops (got %d)" % total)
    check(len(per_thread) == 4 and all(v == 1000 for v in per_thread.values()),
          "each of the 4 threads stopped 1000 times")
    rsp.close()
    agent.wait()


def threads():
    # At the function entry the displaced instruction (push %rbp) is emulated...
    count_hits(symbol_offset(FX_THREADS, "agentfx_tick"))
    # ...further in, it must be single-stepped with the other threads held.
    count_hits(non_emulated_address(FX_THREADS, "agentfx_tick"))


def removed_breakpoints():
    """Breakpoints removed while other threads' traps on them are still queued in the kernel: those traps
    must vanish (the thread re-executes the restored instruction), never surface as a stray SIGTRAP."""
    agent, rsp, base = serve_threads_fixture()
    # Two addresses in the hot function; each hit moves the only breakpoint to the other one.
    spots = [base + symbol_offset(FX_THREADS, "agentfx_tick"), base + non_emulated_address(FX_THREADS, "agentfx_tick")]
    state = {"armed": 0, "hits": 0}
    check(rsp.cmd("Z0,%x,1" % spots[0]) == b"OK", "first breakpoint inserted")

    def on_stop(reply):
        armed = state["armed"]
        sig, f = parse_stop(reply)
        if sig != 5 or "swbreak" not in f or le64(f[RIP]) != spots[armed]:
            fail("stop %d is not at the armed breakpoint 0x%x: %r" % (state["hits"], spots[armed], reply[:200]))
        state["hits"] += 1
        if rsp.cmd("z0,%x,1" % spots[armed]) != b"OK" or rsp.cmd("Z0,%x,1" % spots[armed ^ 1]) != b"OK":
            fail("moving the breakpoint failed at stop %d" % state["hits"])
        state["armed"] = armed ^ 1

    exit_reply = continue_until_exit(rsp, on_stop, 20000)
    hits = state["hits"]
    print("hits:", hits)
    check(exit_reply is not None and exit_reply.startswith(b"W00"),
          "the program exited with status 0 after %d hits (no thread resumed mid-instruction)" % hits)
    # A tick can pass unseen (its thread was between the spots when the breakpoint moved), so no exact
    # count; each thread passes the spots 1000 times, so far fewer hits means stops went missing.
    check(hits >= 1000, "the breakpoint kept being hit as it moved (%d hits)" % hits)
    rsp.close()
    agent.wait()


def stop_stack():
    """The rsprof-stopstack extension: once asked, every breakpoint stop carries the stack window at sp,
    and those bytes are exactly what an 'x' read of the same range returns while the thread is stopped."""
    agent, rsp, base = serve_threads_fixture()
    addr = base + symbol_offset(FX_THREADS, "agentfx_tick")
    check(rsp.cmd("Z0,%x,1" % addr) == b"OK", "breakpoint inserted")
    first = rsp.cmd("vCont;c")
    check(first.startswith(b"T05") and b"rsprof-stack:" not in first, "no stack in a stop before it is asked for")
    check(rsp.cmd("QRsprofStopStack:%x" % (1 << 20)).startswith(b"E"), "a window over the agent's limit is refused")
    check(rsp.cmd("QRsprofStopStack:zz").startswith(b"E"), "a malformed length is refused")
    window = 0x4000
    check(rsp.cmd("QRsprofStopStack:%x" % window) == b"OK", "a 16 KiB window is accepted")
    sizes = []
    for _ in range(200):
        reply = rsp.cmd("vCont;c")
        head, sep, stack = reply.partition(b";rsprof-stack:")
        check(sep != b"" and head.startswith(b"T05"), "a breakpoint stop carries the stack: %r" % reply[:80])
        _, f = parse_stop(head + b";")
        check(le64(f[RIP]) == addr and "swbreak" in f, "the stop is at the breakpoint")
        sp = le64(f[7])
        check(0 < len(stack) <= window, "the window is 1..%d bytes (got %d)" % (window, len(stack)))
        check(rsp.cmd("Hg" + f["thread"]) == b"OK", "thread selected")
        x = rsp.cmd("x%x,%x" % (sp, len(stack)))
        check(x[:1] == b"b" and x[1:] == stack, "the stop's stack equals an x read at sp=0x%x" % sp)
        sizes.append(len(stack))
    print("window sizes: min %d max %d" % (min(sizes), max(sizes)))
    check(max(sizes) == window, "stacks deeper than the window send the whole window")
    check(rsp.cmd("QRsprofStopStack:0") == b"OK", "the extension can be turned off")
    reply = rsp.cmd("vCont;c")
    check(reply.startswith(b"T05") and b"rsprof-stack:" not in reply, "no stack once turned off")
    check(rsp.cmd("z0,%x,1" % addr) == b"OK", "breakpoint removed")
    check(continue_until_exit(rsp, lambda r: fail("unexpected stop %r" % r[:80]), 5) is not None, "the program ran to its end")
    rsp.close()
    agent.wait()


def quiet_hits(reply):
    """The rsprof-quiet records of a stop reply as (tid, pc, sp, retval, ns) tuples."""
    text = reply.split(b";rsprof-stack:", 1)[0].decode()
    m = re.search(r"rsprof-quiet:([^;]*)", text)
    if not m:
        return []
    return [tuple(int(x, 16) for x in rec.split("/")) for rec in m.group(1).split(",")]


def arm_quiet_fixture(rsp, check_refusals=False):
    """Runs the quiet fixture to its first call of seven, puts a quiet breakpoint at that call's return site
    and an ordinary one at mark; returns both addresses."""
    base = load_base(pid_of(rsp), FX_QUIET)
    seven, mark = base + symbol_offset(FX_QUIET, "agentfx_seven"), base + symbol_offset(FX_QUIET, "agentfx_mark")
    check(rsp.cmd("Z0,%x,1" % seven) == b"OK", "breakpoint at seven")
    sig, f = parse_stop(rsp.cmd("vCont;c"))
    check(sig == 5 and le64(f[RIP]) == seven, "stopped at seven's entry")
    ret_site = le64(rsp.cmd("m%x,8" % le64(f[7])).decode())
    check(rsp.cmd("z0,%x,1" % seven) == b"OK", "breakpoint at seven removed")
    if check_refusals:
        check(rsp.cmd("QRsprofQuiet:%x,1" % ret_site).startswith(b"E"), "no quiet flag where no breakpoint is")
        check(rsp.cmd("QRsprofQuiet:%x,2" % ret_site).startswith(b"E"), "a flag other than 0 or 1 is refused")
    check(rsp.cmd("Z0,%x,1" % ret_site) == b"OK" and rsp.cmd("QRsprofQuiet:%x,1" % ret_site) == b"OK",
          "quiet breakpoint at seven's return site 0x%x" % ret_site)
    check(rsp.cmd("Z0,%x,1" % mark) == b"OK", "breakpoint at mark")
    return ret_site, mark


def quiet_break():
    """The rsprof-quietbreak extension: a hit on a quiet breakpoint is not reported; the thread goes on, and
    the next stop reply (an exit's included) carries the hit's thread, PC, SP and return-value register.
    The fixture calls seven(i) = 7 * i and then mark(i): with a quiet breakpoint at seven's return site and
    a normal one at mark, each stop at mark carries exactly the result of the call just before it."""
    n = 200
    agent = Agent(["--", FX_QUIET, str(n)])
    rsp = Rsp(agent.port)
    sup = rsp.handshake()
    check(b"rsprof-quietbreak+" in sup and b"rsprof-stoptime+" in sup, "the agent offers rsprof-quietbreak and -stoptime")
    check(rsp.cmd("QRsprofStopTime:2").startswith(b"E"), "a stop-time flag other than 0 or 1 is refused")
    check(rsp.cmd("QRsprofStopTime:1") == b"OK", "stop times turned on")
    ret_site, mark = arm_quiet_fixture(rsp, check_refusals=True)
    loud_at = 100  # for one call the return site is made loud again
    reported_loud = False
    last_ns = 0
    i = 0
    while i < 150:
        reply = rsp.cmd("vCont;c")
        sig, f = parse_stop(reply)
        check(sig == 5 and "swbreak" in f, "a breakpoint stop: %r" % reply[:120])
        pc, sp = le64(f[RIP]), le64(f[7])
        hits = quiet_hits(reply)
        if i == loud_at:
            check(pc == ret_site and not hits and le64(f[0]) == 7 * i,
                  "with the flag cleared, seven's return stops like any breakpoint (rax = %d)" % (7 * i))
            check(rsp.cmd("QRsprofQuiet:%x,1" % ret_site) == b"OK", "quiet again")
            loud_at, reported_loud = -1, True
            continue
        check(pc == mark, "call %d: the only reported stop is at mark (got 0x%x)" % (i, pc))
        tid = int(f["thread"].split(".")[-1], 16)
        want = [] if reported_loud else [(tid, ret_site, sp + 8, 7 * i)]
        check([h[:4] for h in hits] == want,
              "call %d: quiet hits %r, expected %r (seven's return, 7 * i in rax, mark's caller's sp)" % (i, hits, want))
        if i < 140:
            stop_ns = int(f["rsprof-time"], 16)
            times = [h[4] for h in hits] + [stop_ns]
            check(last_ns < times[0] and times == sorted(times),
                  "call %d: the agent's times of the hit and the stop come in order: %r" % (i, times))
            last_ns = stop_ns
        else:
            check("rsprof-time" not in f, "call %d: no stop time once turned off" % i)
        if i == 139:
            check(rsp.cmd("QRsprofStopTime:0") == b"OK", "stop times turned off")
        reported_loud = False
        if i + 1 == loud_at:
            check(rsp.cmd("QRsprofQuiet:%x,0" % ret_site) == b"OK", "quiet flag cleared")
        i += 1
    check(rsp.cmd("z0,%x,1" % mark) == b"OK", "breakpoint at mark removed")
    reply = rsp.cmd("vCont;c")
    check(reply.startswith(b"W00"), "the program ran to its end: %r" % reply[:80])
    rets = [h[3] for h in quiet_hits(reply)]
    check(rets == [7 * k for k in range(150, n)],
          "the exit reply carries the last %d quiet hits in order (got %d)" % (n - 150, len(rets)))
    rsp.close()
    agent.wait()


def quiet_break_threads():
    """Quiet hits with 4 threads: hits taken while other threads run, and hits found when the agent stops
    every thread for another thread's stop, all arrive once and in each thread's order."""
    n, nthreads = 500, 4
    agent = Agent(["--", FX_QUIET, str(n), str(nthreads)])
    rsp = Rsp(agent.port)
    rsp.handshake()
    ret_site, mark = arm_quiet_fixture(rsp)
    results, marks = {}, {}

    def take(reply):
        for tid, pc, _, ret, _ in quiet_hits(reply):
            if pc != ret_site:
                fail("a quiet hit at 0x%x, not at the return site" % pc)
            results.setdefault(tid, []).append(ret)

    def on_stop(reply):
        sig, f = parse_stop(reply)
        if sig != 5 or "swbreak" not in f or le64(f[RIP]) != mark:
            fail("unexpected stop (signal %s, pc 0x%x; mark 0x%x, return site 0x%x): %r"
                 % (sig, le64(f[RIP]) if RIP in f else 0, mark, ret_site, reply[:160]))
        take(reply)
        tid = int(f["thread"].split(".")[-1], 16)
        marks[tid] = marks.get(tid, 0) + 1

    exit_reply = continue_until_exit(rsp, on_stop, nthreads * n + 10)
    check(exit_reply is not None and exit_reply.startswith(b"W00"), "the program exited with status 0")
    take(exit_reply)
    print("quiet hits per thread:", sorted(len(v) for v in results.values()), "mark stops:", sorted(marks.values()))
    check(len(results) == nthreads and all(v == [7 * i for i in range(n)] for v in results.values()),
          "each thread's %d results arrived once, in order" % n)
    check(sorted(marks.values()) == [n] * nthreads, "every call of mark stopped, and only those")
    rsp.close()
    agent.wait()


def start_attach_fixture(steps):
    d = tempfile.mkdtemp(prefix="rsprof-agent-attach.")
    ready = os.path.join(d, "ready")
    proc = spawn([FX_ATTACH, ready, str(steps)], stdout=subprocess.PIPE)
    deadline = time.time() + 10
    while not os.path.exists(ready):
        if time.time() > deadline:
            proc.kill()
            fail("attach fixture did not start")
        time.sleep(0.01)
    return proc


def attach():
    steps = 150
    proc = start_attach_fixture(steps)
    agent = Agent(["--attach", str(proc.pid)])
    rsp = Rsp(agent.port)
    rsp.handshake()
    check(rsp.cmd("qAttached") == b"1", "qAttached says attached")
    addr = load_base(proc.pid, FX_ATTACH) + symbol_offset(FX_ATTACH, "agentfx_step")
    check(rsp.cmd("Z0,%x,1" % addr) == b"OK", "breakpoint inserted")
    sig, f = parse_stop(rsp.cmd("c"))
    check(sig == 5 and le64(f[RIP]) == addr, "the attached program hit the breakpoint")
    arg = le64(f[5])  # rdi: the loop index passed to agentfx_step
    check(0 <= arg < steps, "the first argument register is plausible (%d)" % arg)
    check(rsp.cmd("z0,%x,1" % addr) == b"OK", "breakpoint removed")
    check(rsp.cmd("D") == b"OK", "detach acknowledged")
    rc = agent.wait()
    out, _ = proc.communicate(timeout=30)
    expect = sum(i * 3 + 1 for i in range(steps))
    check(out.decode().strip() == "attach fixture done: sum=%d" % expect, "the program's output is unchanged")
    check(proc.returncode == 3, "the program exited with its normal status 3")
    check(rc == 0, "the agent exited cleanly after detach")


def protocol():
    agent = Agent(["--", FX_GDB])
    rsp = Rsp(agent.port)
    sup = rsp.handshake().decode()
    for feat in ("QStartNoAckMode+", "qXfer:libraries-svr4:read+", "binary-upload+", "swbreak+",
                 "qXfer:auxv:read+", "qXfer:exec-file:read+", "multiprocess+", "vContSupported+", "rsprof-stopstack+"):
        check(feat in sup, "qSupported advertises " + feat)
    pid = pid_of(rsp)
    sig, f = parse_stop(rsp.cmd("?"))
    check(sig == 5 and all(r in f for r in range(17)), "stop reply expedites rax..r15 and rip")
    check(f["thread"] == "p%x.%x" % (pid, pid), "thread id is p<pid>.<tid> with multiprocess")
    # Pipelining: several requests before reading any reply; answers come back in order.
    sp = le64(f[7])
    rsp.send_raw(frame("g") + frame("m%x,40" % sp) + frame("x%x,40" % sp) + frame("qC"))
    g, m, x, qc = rsp.recv(), rsp.recv(), rsp.recv(), rsp.recv()
    check(len(g) >= 2 * 8 * 17 and le64(g[7 * 16:8 * 16].decode()) == sp, "g agrees with the expedited rsp")
    check(x[:1] == b"b" and x[1:] == bytes.fromhex(m.decode()), "x (binary) equals m (hex) for the same bytes")
    check(qc.startswith(b"QC"), "pipelined replies arrive in order")
    exe = rsp.cmd("qXfer:exec-file:read::0,1000")
    check(exe[:1] == b"l" and os.path.realpath(exe[1:].decode()) == os.path.realpath(FX_GDB),
          "qXfer:exec-file names the program")
    auxv = rsp.cmd("qXfer:auxv:read::0,1000")
    with open("/proc/%d/auxv" % pid, "rb") as fh:
        check(auxv[1:] == fh.read(), "qXfer:auxv equals /proc/PID/auxv")
    xml = rsp.cmd("qXfer:features:read:target.xml:0,fff0")
    check(b"i386:x86-64" in xml, "target.xml describes x86_64")
    # Run to main so the dynamic linker has filled r_debug, then list libraries.
    main = load_base(pid, FX_GDB) + symbol_offset(FX_GDB, "agentfx_middle")
    rsp.cmd("Z0,%x,1" % main)
    sig, f = parse_stop(rsp.cmd("vCont;c"))
    check(sig == 5 and le64(f[RIP]) == main, "stopped at agentfx_middle")
    libs = rsp.cmd("qXfer:libraries-svr4:read::0,fff0").decode()
    check('main-lm="0x' in libs and "libc.so.6" in libs and 'l_addr="0x' in libs and 'l_ld="0x' in libs,
          "libraries-svr4 lists libc with lm/l_addr/l_ld")
    names = [n for n in re.findall(r'name="([^"]+)"', libs) if "/" in n]  # not the vDSO
    with open("/proc/%d/maps" % pid) as fh:
        mapped = {os.path.realpath(l.split()[5]) for l in fh if len(l.split()) >= 6}
    check(len(names) >= 2 and all(os.path.realpath(n) in mapped for n in names),
          "every listed library is mapped in the process")
    # vFile: read the executable back and compare; writing is refused.
    hexpath = FX_GDB.encode().hex()
    check(rsp.cmd("vFile:open:%s,1,0" % hexpath) == b"F-1,d", "opening for writing fails with EACCES")
    fd = rsp.cmd("vFile:open:%s,0,0" % hexpath).decode()
    check(fd.startswith("F") and not fd.startswith("F-"), "vFile:open read-only works")
    fd = int(fd[1:], 16)
    data, off = b"", 0
    while True:
        r = rsp.cmd("vFile:pread:%x,4000,%x" % (fd, off))
        n, _, body = r.partition(b";")
        n = int(n[1:], 16)
        if n == 0:
            break
        if len(body) != n:
            fail("pread announced %d bytes but sent %d" % (n, len(body)))
        data += body
        off += n
    with open(FX_GDB, "rb") as fh:
        check(data == fh.read(), "vFile:pread reads the executable byte for byte")
    st = rsp.cmd("vFile:fstat:%x" % fd)
    check(st.startswith(b"F40;") and int.from_bytes(st[4 + 28:4 + 36], "big") == len(data),
          "vFile:fstat reports the size")
    check(rsp.cmd("vFile:close:%x" % fd) == b"F0", "vFile:close")
    link = rsp.cmd("vFile:readlink:%s" % ("/proc/%d/exe" % pid).encode().hex())
    check(os.path.realpath(link.partition(b";")[2].decode()) == os.path.realpath(FX_GDB), "vFile:readlink")
    # Memory writes keep the breakpoint; reads show the new bytes.
    orig = rsp.cmd("m%x,4" % main)
    check(rsp.cmd("M%x,1:%s" % (main, orig[:2].decode())) == b"OK", "writing over a breakpoint works")
    check(rsp.cmd("m%x,4" % main) == orig, "and reads still show the original bytes")
    rsp.send("k")  # no reply: the agent kills the program and leaves
    rc = agent.wait()
    check(rc == 137, "after k the agent exits with the killed program's status (got %s)" % rc)


def connect_served(port):
    """Connects and handshakes, retrying while the agent is still closing a previous client (it
    then refuses us as a second one). Bounded."""
    for _ in range(200):
        try:
            c = Rsp(port)
            c.handshake()
            return c
        except (ConnectionError, EOFError):
            time.sleep(0.05)
    fail("the agent never served a new client")


def robustness():
    agent = Agent(["--multi", "--", FX_GDB])
    rsp = Rsp(agent.port)
    rsp.send_raw(b"$qSupported#00")
    check(rsp.recv_byte_events() == "-", "a bad checksum is answered with '-'")
    rsp.send_raw(b"$" + b"a" * 300000 + b"#00")
    check(rsp.recv_byte_events() == "-", "an oversized packet is dropped with '-'")
    rsp.handshake()
    for bad in ("mzz,10", "m10", "Mxyz", "X1,2:", "g1", "pzz", "Z0,zz,1", "vFile:pread:zz", "Hgzz",
                "qXfer:auxv:read::zz", "vCont;q", "vRun;zz", "vAttach;0", "P1=zz"):
        r = rsp.cmd(bad)
        if not r.startswith(b"E") and not r.startswith(b"F-1"):
            fail("malformed %r got %r" % (bad, r))
    print("ok: malformed arguments get error replies")
    for unknown in ("qNoSuchThing", "vNoSuch", "jUnknown", "Z9,10,1", "y"):
        check(rsp.cmd(unknown) == b"", "unknown packet %s gets the empty reply" % unknown)
    rsp.send_raw(b"$m0,4")  # truncated: the rest never comes
    rsp.close()
    # A second client is refused while the first is served.
    first = connect_served(agent.port)
    second = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    second.settimeout(10)
    check(second.recv(10) == b"", "a second connection is closed by the agent")
    second.close()
    check(first.cmd("qAttached") in (b"0", b"1"), "the first client is undisturbed")
    first.send_raw(b"$qSupp")  # disconnect mid-packet
    first.close()
    served = 0
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", agent.port), timeout=20)
        if i % 3 == 0:
            # Wait for the answer (or the refusal, if the agent is still closing the previous
            # connection): this keeps the listen queue short, so no connection waits for SYN
            # retransmissions on a loaded machine.
            try:
                s.sendall(b"+$?#3f")
                data = b""
                while b"#" not in data:
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    data += chunk
                served += b"$W00#" in data
            except ConnectionError:
                pass
        s.close()
    check(served > 0, "connections in the cycles were served (%d answered)" % served)
    print("ok: survived 1000 connect/disconnect cycles")
    last = connect_served(agent.port)
    check(last.cmd("vRun;") .startswith(b"T05"), "the agent still launches programs afterwards")
    last.cmd("vKill;1")
    last.close()
    check(agent.proc.poll() is None, "the agent is still running")
    agent.kill()


def disconnect():
    # A launched program dies with the client.
    agent = Agent(["--", FX_ATTACH, "/dev/null", "100000"])
    rsp = Rsp(agent.port)
    rsp.handshake()
    pid = pid_of(rsp)
    rsp.send("vCont;c")
    time.sleep(0.2)
    rsp.send_raw(b"\x03")
    sig, f = parse_stop(rsp.recv())
    check(sig == 2 and f.get("thread") == "p%x.%x" % (pid, pid), "the interrupt byte stops the program (T02)")
    with open("/proc/%d/stat" % pid) as fh:
        check(fh.read().split(") ")[1][0] == "t", "the program is in a ptrace stop")
    rsp.send("vCont;c")
    time.sleep(0.1)
    rsp.close()
    agent.wait()
    gone = not os.path.exists("/proc/%d" % pid)
    check(gone, "the launched program was killed when the client vanished")
    # An attached program keeps running, without our breakpoint, when the client vanishes.
    steps = 120
    proc = start_attach_fixture(steps)
    agent = Agent(["--attach", str(proc.pid)])
    rsp = Rsp(agent.port)
    rsp.handshake()
    addr = load_base(proc.pid, FX_ATTACH) + symbol_offset(FX_ATTACH, "agentfx_step")
    rsp.cmd("Z0,%x,1" % addr)
    sig, _ = parse_stop(rsp.cmd("c"))
    check(sig == 5, "attached program stopped at the breakpoint")
    rsp.close()
    agent.wait()
    out, _ = proc.communicate(timeout=30)
    expect = sum(i * 3 + 1 for i in range(steps))
    check(out.decode().strip() == "attach fixture done: sum=%d" % expect and proc.returncode == 3,
          "the attached program ran on to its normal end")


def exec_events():
    """The traced process executes a new program: a client that offered exec-events+ gets an 'exec' stop naming
    it (hex path, as gdbserver sends); any client finds the old image's breakpoints forgotten (removing one is
    a harmless OK, nothing is written into the new image) and the new program runs to its normal end."""
    new_program = os.path.realpath("/bin/echo")
    for offer in (True, False):
        agent = Agent(["--", "/bin/sh", "-c", "exec /bin/echo exec-done"])
        rsp = Rsp(agent.port)
        sup = rsp.handshake("multiprocess+;swbreak+" + (";exec-events+" if offer else ""))
        check((b"exec-events+" in sup) == offer, "exec-events+ offered back only when the client offers it")
        check(b"rsprof-detachfork+" in sup and b"fork-events+" not in sup.replace(b"rsprof-detachfork+", b""),
              "the agent says it lets children go itself (rsprof-detachfork+) and reports no forks")
        pid = pid_of(rsp)
        auxv = open("/proc/%d/auxv" % pid, "rb").read()
        pairs = [int.from_bytes(auxv[i:i + 8], "little") for i in range(0, len(auxv) - 15, 8)]
        entry = next(pairs[i + 1] for i in range(0, len(pairs) - 1, 2) if pairs[i] == 9)  # AT_ENTRY
        check(rsp.cmd("Z0,%x,1" % entry) == b"OK", "breakpoint at the shell's entry point")
        sig, f = parse_stop(rsp.cmd("vCont;c"))
        check(sig == 5 and "swbreak" in f and le64(f[RIP]) == entry, "stopped at the shell's entry point")
        reply = rsp.cmd("vCont;c")
        if offer:
            sig, f = parse_stop(reply)
            check(sig == 5 and bytes.fromhex(f.get("exec", "")).decode() == new_program and "thread" in f,
                  "the exec is reported with the new program's path: %r" % reply[:120])
            check(rsp.cmd("z0,%x,1" % entry) == b"OK", "removing the old image's breakpoint after exec")
            reply = rsp.cmd("vCont;c")
        check(reply.startswith(b"W00"), "the new program ran to its end: %r" % reply[:80])
        rsp.close()
        agent.wait()
        check(agent.stdout == "exec-done\n", "the new program's output: %r" % agent.stdout)


def cli():
    agent_bin = os.environ["AGENT"]
    r = subprocess.run([agent_bin, "--bogus"], capture_output=True, text=True)
    check(r.returncode == 2 and "--bogus" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
          "an unknown option is named on one line, exit 2")
    r = subprocess.run([agent_bin, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "--listen" in r.stdout, "--help")
    r = subprocess.run([agent_bin, "--version"], capture_output=True, text=True)
    check(r.returncode == 0 and "rsprof-agent" in r.stdout, "--version")
    agent = Agent(["--", FX_GDB])
    agent.kill()
    check("Listening on port %d" % agent.port in agent.stderr, "port 0 prints 'Listening on port N'")
    a = spawn([agent_bin, "--listen", "0.0.0.0:0", "--multi", "--once"], stderr=subprocess.PIPE)
    time.sleep(0.5)
    a.send_signal(signal.SIGTERM)
    err = a.communicate(timeout=10)[1].decode()
    check("without TLS" in err, "listening beyond loopback without TLS warns")


if __name__ == "__main__":
    if sys.argv[1] != "cli":
        require_ptrace()
    {"threads": threads, "removed_breakpoints": removed_breakpoints, "stop_stack": stop_stack, "quiet_break": quiet_break,
     "quiet_break_threads": quiet_break_threads,
     "attach": attach,
     "protocol": protocol, "robustness": robustness, "disconnect": disconnect, "cli": cli,
     "exec_events": exec_events}[sys.argv[1]]()
