#!/usr/bin/env python3
"""Tests of the rsprof-capture extension at the protocol level: capture breakpoints, the event stream
("%RsprofEvents:" notifications) and its flow control, against the quiet fixture, whose threads each call
agentfx_seven(i) = 7 * i for i = 0..N-1."""
import os
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from agenttest import Agent, Rsp, check, fail, le64, load_base, parse_stop, require_ptrace, symbol_offset, unescape  # noqa: E402

FX_QUIET = os.environ["FX_QUIET"]
ENTRY, RETURN, STATS = 1, 2, 5
RDI, RSP_REG = 5, 7


class StreamRsp(Rsp):
    """An Rsp that also takes notifications: their records are collected in self.records, in order."""

    def __init__(self, port):
        super().__init__(port)
        self.records = []
        self.notifications = 0

    def recv(self):
        while True:
            while not self.buf:
                self._fill()
            lead = self.buf[:1]
            if lead in (b"+", b"-"):
                self.buf = self.buf[1:]
                continue
            if lead not in (b"$", b"%"):
                fail("stray byte %r between packets" % lead)
            end = self.buf.find(b"#")
            while end < 0 or len(self.buf) < end + 3:
                self._fill()
                end = self.buf.find(b"#")
            body = self.buf[1:end]
            cs = int(self.buf[end + 1:end + 3], 16)
            self.buf = self.buf[end + 3:]
            if sum(body) & 0xFF != cs:
                fail("bad checksum from the agent")
            data = unescape(body)
            if lead == b"$":
                if self.ack:
                    self.sock.sendall(b"+")
                return data
            check(data.startswith(b"RsprofEvents:"), "a notification is an event batch: %r" % data[:20])
            self.notifications += 1
            self.records += parse_records(data[len(b"RsprofEvents:"):])


def parse_records(b):
    out, off = [], 0
    while off < len(b):
        kind, flags, length, tid, bid, seq, ns = struct.unpack_from("<BBxxIIIQQ", b, off)
        check(length >= 32 and off + length <= len(b), "record length %d fits its batch" % length)
        body = b[off + 32:off + length]
        rec = {"kind": kind, "flags": flags, "tid": tid, "id": bid, "seq": seq, "ns": ns}
        if kind == ENTRY:
            mask = struct.unpack_from("<Q", body)[0]
            regs, p = {}, 8
            for r in range(64):
                if mask >> r & 1:
                    regs[r] = struct.unpack_from("<Q", body, p)[0]
                    p += 8
            mlen, slen = struct.unpack_from("<II", body, p)
            p += 8
            rec.update(regs=regs, mem=body[p:p + mlen], stack=body[p + mlen:p + mlen + slen])
            check(p + mlen + slen == len(body), "an entry record holds exactly its parts")
        elif kind == RETURN:
            pc, sp, ret, mlen = struct.unpack_from("<QQQI", body)
            rec.update(pc=pc, sp=sp, ret=ret, mem=body[32:32 + mlen])
        elif kind == STATS:
            rec.update(zip(("events", "held_ns", "parked", "watch_overflows"), struct.unpack_from("<QQQQ", body)))
        out.append(rec)
        off += length
    return out


def start(n, nthreads=1, extra=()):
    agent = Agent(["--", FX_QUIET, str(n), str(nthreads)] + list(extra))
    rsp = StreamRsp(agent.port)
    sup = rsp.handshake()
    check(b"rsprof-capture+" in sup, "the agent offers rsprof-capture")
    qc = rsp.cmd("qC").decode()
    pid = int(qc[3:].split(".")[0], 16)
    seven = load_base(pid, FX_QUIET) + symbol_offset(FX_QUIET, "agentfx_seven")
    check(rsp.cmd("Z0,%x,1" % seven) == b"OK", "breakpoint at seven")
    return agent, rsp, seven


def arm(rsp, seven, stack=64, extra=""):
    spec = "QRsprofCapture:%x,7,%x,%x,1%s" % (seven, (1 << RDI) | (1 << RSP_REG), stack, extra)
    check(rsp.cmd(spec) == b"OK", "capture breakpoint armed: " + spec)


def check_calls(rsp, n, nthreads, seven):
    """Every call of seven arrived once per thread, in order: entry (rdi = i, the stack window starting with the
    return address) and return (rax = 7 * i, sp 8 above the entry's), paired by tid and seq."""
    entries, returns = {}, {}
    for r in rsp.records:
        if r["kind"] == ENTRY:
            check(r["id"] == 7 and r["seq"] != 0, "an entry names its breakpoint and call")
            entries.setdefault(r["tid"], []).append(r)
        elif r["kind"] == RETURN:
            returns.setdefault(r["tid"], []).append(r)
    check(len(entries) == nthreads and len(returns) == nthreads, "records from %d threads (got %d/%d)"
          % (nthreads, len(entries), len(returns)))
    for tid, es in entries.items():
        rs = returns[tid]
        check([e["regs"][RDI] for e in es] == list(range(n)), "thread %d: %d entries in order" % (tid, n))
        check([r["ret"] for r in rs] == [7 * i for i in range(n)], "thread %d: %d results in order" % (tid, n))
        for e, r in zip(es, rs):
            check(e["seq"] == r["seq"], "entry and return share the call's seq")
            ret_addr = struct.unpack_from("<Q", e["stack"])[0]
            check(r["pc"] == ret_addr and r["sp"] == e["regs"][RSP_REG] + 8,
                  "the return is at the address on top of the entry's stack, sp + 8")
            check(e["ns"] <= r["ns"], "times in order")


def capture_basic():
    """Entries and returns of 300 calls stream while the program runs; the only stop reply is the exit, and
    every record arrives before it. Malformed specs are refused; the stats record counts the events."""
    n = 300
    agent, rsp, seven = start(n)
    for bad in ("QRsprofCapture:%x,1,1,100000,1" % seven, "QRsprofCapture:%x,1,1,40,2" % seven,
                "QRsprofCapture:%x,1,1,40,1" % (seven + 1), "QRsprofCapture:%x,1,1,40,0;M:5,0,8" % seven,
                "QRsprofCapture:%x,1,1,40,1;x:5,0,8" % seven):
        check(rsp.cmd(bad).startswith(b"E"), "refused: " + bad)
    arm(rsp, seven, extra=";m:7,0,8;M:7,0,8")
    reply = rsp.cmd("vCont;c")
    check(reply.startswith(b"W00"), "the program ran to its end with no stop: %r" % reply[:60])
    check_calls(rsp, n, 1, seven)
    e = next(r for r in rsp.records if r["kind"] == ENTRY)
    check(e["mem"] == e["stack"][:8], "entry memory at sp+0 equals the stack window's first word")
    stats = [r for r in rsp.records if r["kind"] == STATS]
    check(stats and stats[-1]["events"] == 2 * n, "the stats record counts %d events" % (2 * n))
    print("%d records in %d notifications" % (len(rsp.records), rsp.notifications))
    rsp.close()
    agent.wait()


def capture_threads():
    """Four threads: every thread's calls arrive once and in order, none reported as a stop."""
    n, nthreads = 2000, 4
    agent, rsp, seven = start(n, nthreads)
    arm(rsp, seven)
    reply = rsp.cmd("vCont;c")
    check(reply.startswith(b"W00"), "the program ran to its end with no stop: %r" % reply[:60])
    check_calls(rsp, n, nthreads, seven)
    rsp.close()
    agent.wait()


def capture_killed():
    """A program killed by a signal with events in flight: every record still precedes the X reply."""
    n = 5000
    agent, rsp, seven = start(n, 1, ["kill"])
    arm(rsp, seven)
    reply = rsp.cmd("vCont;c")
    check(reply.startswith(b"X09"), "killed by SIGKILL: %r" % reply[:60])
    check_calls(rsp, n, 1, seven)
    rsp.close()
    agent.wait()


def sanitized(pid):
    """Whether the agent runs with AddressSanitizer (its shadow memory makes RSS meaningless)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def capture_slow_client():
    """A client that stops reading for 2 s: the agent holds the program (its thread waits at the breakpoint)
    rather than buffer without bound or drop anything; its memory stays small; once the client reads again
    every event arrives, and the stats record says the program was held."""
    n, nthreads = 40000, 2
    agent, rsp, seven = start(n, nthreads)
    # The window stops at the thread's first stack pointer, so memory makes the bulk: 256 bytes at the entry and
    # at the return, about 45 MB in all, far more than any buffer.
    arm(rsp, seven, extra=";m:7,0,100;M:7,0,100")
    rsp.send("vCont;c")
    time.sleep(2)
    peak = rss_kb(agent.proc.pid)
    asan = sanitized(agent.proc.pid)
    reply = rsp.recv()
    check(reply.startswith(b"W00"), "the program ran to its end: %r" % reply[:60])
    check_calls(rsp, n, nthreads, seven)
    stats = [r for r in rsp.records if r["kind"] == STATS][-1]
    print("agent RSS after 2 s unread: %d KiB; held %.2f s over %d waits" % (peak, stats["held_ns"] / 1e9,
                                                                             stats["parked"]))
    if asan:
        print("note: sanitizer build, RSS not compared")
    else:
        check(peak < 8 * 1024, "the agent's RSS stays under 8 MB (%d KiB)" % peak)
    check(stats["held_ns"] > 0 and stats["parked"] > 0, "the program was held while the client did not read")
    rsp.close()
    agent.wait()


if __name__ == "__main__":
    require_ptrace()
    {"basic": capture_basic, "threads": capture_threads, "killed": capture_killed,
     "slow_client": capture_slow_client}[sys.argv[1]]()
