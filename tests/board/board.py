#!/usr/bin/env python3
"""rsprof on an emulated aarch64 board (scripts/board: Debian's arm64 kernel under qemu-system-aarch64): the
static aarch64 agent launches, attaches, traces, unwinds and streams on a real aarch64 Linux kernel, and the host
collector gets the same results as on the host.

usage: board.py CHECK --collector BIN --board SCRIPT --dir DIR [--host-fork-fixture BIN]
CHECK: boot (start the board, the shared set-up of the other checks), memory, memory-rust, stacks-O0, stacks-O2, tls, attach,
fork, killed, rss, stop (the shared clean-up). One board serves every check: its agents are an --multi agent
(board port 9000), a TLS --multi agent (9001) and one attached to a running fx-fault-ticks (9002). The board's
files (the collector's --sysroot and gdb's sysroot) are DIR/rootfs; its serial console is DIR/run/console.log.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import rsprof_test as t  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def expect_eq(what, got, want):
    if got != want:
        t.fail(f"{what}: got {got!r}, expected {want!r}")
    print(f"ok {what} = {got!r}")


class Board:
    def __init__(self, a):
        self.a = a
        self.dir = a.dir
        self.rootfs = os.path.join(a.dir, "rootfs")
        self.run = os.path.join(a.dir, "run")
        self.console = os.path.join(self.run, "console.log")
        self.state = os.path.join(a.dir, "test-board")  # what boot left for the other checks

    def env(self):
        return {**os.environ, "RSPROF_BOARD_DIR": self.dir}

    def ports(self):
        skipped = os.path.join(self.state, "skipped")
        if os.path.exists(skipped):
            t.skip(open(skipped).read().strip())
        path = os.path.join(self.state, "ports")
        if not os.path.exists(path):
            t.fail("the board is not running (board.boot did not pass)")
        return {k: int(v) for k, v in (line.split() for line in open(path))}

    def console_text(self):
        return open(self.console, errors="replace").read()

    def mark(self):
        return os.path.getsize(self.console)

    def since(self, mark):
        """The program's output on the console since mark: every line but the board's own status lines."""
        with open(self.console, errors="replace") as f:
            f.seek(mark)
            text = f.read().replace("\r\n", "\n")
        return "".join(ln + "\n" for ln in text.split("\n")[:-1]
                       if not ln.startswith(("board-status:", "rsprof-agent:", "Listening", "rsprof-board:")))

    def collector(self, port, *args, check=True, host="127.0.0.1", timeout=600):
        return t.collector(self.a.collector, port, "--sysroot", self.rootfs, "--system-debug-dir", "", *args,
                           check=check, host=host, timeout=timeout)

    def tmp(self, name):
        d = os.path.join(self.state, "out")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)


def traced(b, port, name, *args, host="127.0.0.1", extra=(), check=True):
    """Runs the collector's memory module on one program of the board (--run ARGS); returns (summary, profile,
    collector result)."""
    prof, summ = b.tmp(f"{name}.drcctprof"), b.tmp(f"{name}.json")
    for p in (prof, summ):
        if os.path.exists(p):
            os.unlink(p)
    out = b.collector(port, "--module", "memory", "-o", prof, "--summary-json", summ, *extra, "--run", *args,
                      host=host, check=check)
    return json.load(open(summ)), prof, out


def folded(b, prof, metric):
    stacks = {}
    for line in t.report(b.a.collector, prof, "folded", "--metric", metric).splitlines():
        stack, _, value = line.rpartition(" ")
        if stack:
            stacks[tuple(stack.split(";"))] = stacks.get(tuple(stack.split(";")), 0) + int(value)
    return stacks


def fixture_counts(text):
    lines = [ln for ln in text.splitlines() if "allocs=" in ln]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])} if lines else {}


def check_target(s):
    """The summary names the board: an aarch64 target served by our agent."""
    expect_eq("target architecture in the summary", s["target"]["arch"], "aarch64")
    if not re.fullmatch(r"rsprof-agent \d+\.\d+\.\d+", s["target"]["agent"]):
        t.fail(f"the summary's target agent is {s['target']['agent']!r}")


def check_boot(b):
    shutil.rmtree(b.state, ignore_errors=True)
    os.makedirs(b.state)
    ports = os.path.join(b.state, "ports")
    t0 = time.time()
    r = subprocess.run([b.a.board, "start", "--ports-file", ports, "--multi", "--also-tls", "--also-attach"],
                       env=b.env(), capture_output=True, text=True, timeout=900)
    if r.returncode == 77:
        reason = (r.stderr.strip().splitlines() or ["the board's packages are missing"])[-1]
        open(os.path.join(b.state, "skipped"), "w").write(reason + "\n")
        t.skip(reason)
    if r.returncode != 0:
        t.fail(f"scripts/board start exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    print(r.stderr.strip())
    agent = os.path.join(b.rootfs, "bin", "rsprof-agent")
    print(f"aarch64 agent (static, TLS, stripped): {os.path.getsize(agent)} bytes")
    print(f"board boot to serving: {time.time() - t0:.1f} s including the image build "
          f"({int(open(os.path.join(b.run, 'boot-ms')).read()) / 1000:.1f} s from qemu's start)")
    if "aarch64" not in subprocess.run(["file", agent], capture_output=True, text=True).stdout:
        t.fail("the board's agent is not an aarch64 binary")


def check_stop(b):
    r = subprocess.run([b.a.board, "stop"], env=b.env(), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        t.fail(f"scripts/board stop exited {r.returncode}: {r.stderr}")
    pidfile = os.path.join(b.run, "qemu.pid")
    if os.path.exists(pidfile):
        t.fail("the board's qemu is still recorded as running")
    print("ok the board is stopped")


def check_memory(b):
    """The C fixtures' counts in every capture mode the agent has: streamed by the agent, and round trips."""
    port = b.ports()["main"]
    for prog, rounds, mode in (("fx-alloc-c", "20", "agent"), ("fx-leak-c", "5", "agent"),
                               ("fx-alloc-c", "20", "roundtrip"), ("fx-leak-c", "5", "roundtrip")):
        mark = b.mark()
        s, prof, _ = traced(b, port, prog, f"/fx/{prog}", rounds, extra=("--capture", mode))
        expect_eq(f"{prog}: capture mode", s["capture"]["mode"], mode)
        counts = fixture_counts(b.since(mark))
        if not counts:
            t.fail(f"{prog} printed no counts on the board's console:\n{b.since(mark)}")
        expect_eq(f"{prog}: allocations vs the program's own count", s["memory"]["allocs"], counts["allocs"])
        expect_eq(f"{prog}: frees vs the program's own count", s["memory"]["frees"], counts["frees"])
        expect_eq(f"{prog}: bytes allocated vs the program's own count", s["memory"]["bytes_allocated"],
                  counts["bytes"])
        expect_eq(f"{prog}: exit code", s["program"]["exit_code"], 0)
        if prog == "fx-leak-c":
            expect_eq("leaked bytes", s["memory"]["leaked_bytes"], counts["leaked_bytes"])
            expect_eq("leaked blocks", s["memory"]["leaked_blocks"], counts["leaked_blocks"])
            sites = {}
            for stack, v in folded(b, prof, "leaked_bytes").items():
                site = next((f for f in stack if f in ("leak_a", "leak_b")), None)
                if v and site is None:
                    t.fail(f"a leak attributed to {';'.join(stack)}")
                if v:
                    sites[site] = sites.get(site, 0) + v
            expect_eq("bytes leaked per site", sites, {"leak_a": 300, "leak_b": 300})
        check_target(s)


def check_memory_rust(b):
    """fx-alloc-rust (cross-built by scripts/board with a rustc for aarch64) as tests/e2e/modules.py's heap check
    traces it: the program counts its workload (the *_path functions) by hand, so the profile's allocations, frees
    and bytes in the workload's contexts equal its own counts. The collector's totals also hold the Rust runtime's
    own blocks (argument strings, the stdout buffer), the same for any round count written with as many digits:
    the totals of "alloc 20" minus its workload equal the totals of "alloc 00", which has no workload. Rust's
    default allocator forwards to libc, where the blocks are counted, and every freed block was seen allocated."""
    missing = os.path.join(b.dir, "rust-missing")
    if os.path.exists(missing):
        t.skip("fx-alloc-rust is not on the board: " + open(missing).read().strip())
    port = b.ports()["main"]
    runs = {}
    for rounds in ("20", "00"):
        mark = b.mark()
        s, prof, _ = traced(b, port, f"rust-{rounds}", "/fx/fx-alloc-rust", "alloc", rounds)
        counts = fixture_counts(b.since(mark))
        if not counts:
            t.fail(f"fx-alloc-rust alloc {rounds} printed no counts on the board's console:\n{b.since(mark)}")
        expect_eq(f"alloc {rounds}: exit code", s["program"]["exit_code"], 0)
        in_workload = re.compile(r"::workload::\w+_path$")
        for metric, key in (("allocations", "allocs"), ("frees", "frees"), ("bytes_allocated", "bytes")):
            got = sum(v for st, v in folded(b, prof, metric).items() if any(in_workload.search(f) for f in st))
            expect_eq(f"alloc {rounds}: {metric} in the workload's contexts vs the program's own count", got,
                      counts[key])
        expect_eq(f"alloc {rounds}: frees of blocks never seen allocated", s["memory"]["unknown_frees"], 0)
        if rounds != "00":  # the collector moves the count to libc after 32 Rust calls seen reaching it
            expect_eq(f"alloc {rounds}: where Rust's allocations are counted",
                      s.get("memory_rust", {}).get("counted_at"), "libc")
        check_target(s)
        runs[rounds] = (s["memory"], counts)
    (m, c), (m0, c0) = runs["20"], runs["00"]
    expect_eq("alloc 00: the program's own allocation count", c0["allocs"], 0)
    print(f"alloc 20: the program counts allocs={c['allocs']} frees={c['frees']} bytes={c['bytes']}; the collector's "
          f"totals are allocs={m['allocs']} frees={m['frees']} bytes={m['bytes_allocated']}")
    for key, total in (("allocs", "allocs"), ("frees", "frees"), ("bytes", "bytes_allocated")):
        expect_eq(f"{key} outside the workload (alloc 20 vs alloc 00)", m[total] - c[key], m0[total] - c0[key])


def check_stacks(b, opt):
    port = b.ports()["main"]
    prog = f"/fx/fx-stack-{opt}"
    rounds = "60"
    stacks = b.tmp(f"stacks-{opt}.txt")
    summ = b.tmp(f"stacks-{opt}.json")
    b.collector(port, "--trace", "stack_leaf", "--print-stacks", stacks, "-o", b.tmp(f"stacks-{opt}.drcctprof"),
                "--summary-json", summ, "--run", prog, rounds)
    ours = t.collector_stacks(stacks)
    check_target(json.load(open(summ)))
    if not shutil.which("gdb-multiarch"):
        t.fail("gdb-multiarch is not installed (scripts/install-deps installs it)")
    theirs, raw = t.gdb_stacks([os.path.join(b.rootfs, prog.lstrip("/")), rounds], "stack_leaf", len(ours),
                               remote_port=port, remote_exec=prog, gdb="gdb-multiarch",
                               setup=["set architecture aarch64", f"set sysroot {b.rootfs}"], timeout=600)
    if not theirs:
        t.fail("gdb-multiarch produced no stacks:\n" + raw.stdout[-3000:] + raw.stderr[-3000:])
    t.compare_stacks(ours, theirs, f"fx-stack-{opt}@stack_leaf on the aarch64 board", 50)


def check_tls(b):
    port = b.ports()["tls"]
    d = os.path.join(b.dir, "tls")
    tls = ["--tls-ca", f"{d}/ca.pem", "--tls-cert", f"{d}/host.pem", "--tls-key", f"{d}/host.key",
           "--log-level", "info"]
    mark = b.mark()
    s, _, out = traced(b, port, "tls", "/fx/fx-alloc-c", "20", host="localhost", extra=tls)
    if "(TLS)" not in out.stderr:
        t.fail("the collector did not report a TLS connection:\n" + out.stderr[-2000:])
    print("ok the connection is TLS")
    counts = fixture_counts(b.since(mark))
    expect_eq("allocations over TLS vs the program's own count", s["memory"]["allocs"], counts.get("allocs"))
    expect_eq("frees over TLS vs the program's own count", s["memory"]["frees"], counts.get("frees"))
    # Without the client certificate the agent refuses the connection.
    r = b.collector(port, "--module", "memory", "-o", b.tmp("refused.drcctprof"), "--tls-ca", f"{d}/ca.pem",
                    "--run", "/fx/fx-alloc-c", "1", host="localhost", check=False, timeout=120)
    expect_eq("collector exit status without a client certificate", r.returncode, 1)


def target_status(b, since=0):
    """The last state and tracer the board reported for the attached program, after console offset since."""
    with open(b.console, errors="replace") as f:
        f.seek(since)
        found = re.findall(r"board-status: program attach-target pid=(\d+) state=(\S*) tracer=(\d+)", f.read())
    return found[-1] if found else None


def check_attach(b):
    port = b.ports()["attach"]
    st = target_status(b)
    if not st or st[2] == "0":
        t.fail(f"the attached program's tracer is not the agent: {st}")
    stacks, summ = b.tmp("attach.txt"), b.tmp("attach.json")
    b.collector(port, "--module", "calls", "--trace", "fault_tick", "--duration", "6s", "--print-stacks", stacks,
                "-o", b.tmp("attach.drcctprof"), "--summary-json", summ)
    s = json.load(open(summ))
    if s["program"]["ended"]:
        t.fail("the attached program ended while traced")
    ours = t.collector_stacks(stacks)
    if not ours:
        t.fail("no call of fault_tick was traced in the attached program")
    names = {tuple(f for f, _ in st[:2]) for st in ours}
    expect_eq("the stacks of fault_tick in the attached program", names, {("fault_tick", "main")})
    print(f"ok {len(ours)} calls of fault_tick traced after attaching")
    check_target(s)
    # Detached: the program runs on untraced (the agent stays attached until the client leaves, then lets go).
    mark = b.mark()
    deadline = time.time() + 120
    while True:
        st = target_status(b, mark)
        if st and st[2] == "0" and st[1] in ("S", "R"):
            break
        if time.time() > deadline:
            t.fail(f"the attached program is not running untraced after the collector detached: {st}")
        time.sleep(1)
    print(f"ok after detaching the program runs untraced (state {st[1]}, tracer {st[2]})")


def check_fork(b):
    port = b.ports()["main"]
    for mode in ("fork", "clone", "vfork-exec"):
        want = subprocess.run([b.a.host_fork_fixture, mode, "10"], capture_output=True, text=True,
                              timeout=120).stdout
        mark = b.mark()
        s, prof, out = traced(b, port, f"fork-{mode}", "/fx/fx-fork-c", mode, "10")
        deadline = time.time() + 30
        while "parent allocs=" not in b.since(mark) and time.time() < deadline:
            time.sleep(0.5)
        got = b.since(mark)
        expect_eq(f"{mode}: workers that exited 0", len(re.findall(r"^worker \d: exited 0$", got, re.M)), 4)
        expect_eq(f"{mode}: the traced program's output (as the host build prints it untraced)", got, want)
        expect_eq(f"{mode}: program exit code", s["program"]["exit_code"], 0)
        # 10 rounds before the workers and 10 after, 4 allocations each (clone's child stack is outside them).
        in_parent = sum(v for st, v in folded(b, prof, "allocations").items() if "parent_round" in st)
        expect_eq(f"{mode}: allocations in parent_round", in_parent, 2 * 10 * 4)
        # The workers are followed (--follow-fork yes, the default): worker w runs (w + 1) * 10 rounds.
        in_workers = sum(v for st, v in folded(b, prof, "allocations").items() if "worker_round" in st)
        expect_eq(f"{mode}: allocations in worker_round (the workers are followed)", in_workers,
                  sum((w + 1) * 10 * 4 for w in range(4)))


def check_killed(b):
    port = b.ports()["main"]
    s, prof, out = traced(b, port, "killed", "/fx/fx-alloc-kill", "5000000", check=False)
    expect_eq("collector exit status when the program is killed", out.returncode, 6)
    expect_eq("signal in the summary", s["program"]["signal"], signal.SIGKILL)
    allocs = sum(folded(b, prof, "allocations").values())
    if allocs <= 0:
        t.fail("the partial profile has no allocations")
    expect_eq("allocations in the partial profile vs the summary", allocs, s["memory"]["allocs"])


def check_rss(b):
    b.ports()
    # While tracing: a fresh run of the memory module, then the agent's peak as the board's init last printed it.
    traced(b, b.ports()["main"], "rss", "/fx/fx-alloc-c", "30")
    time.sleep(3)  # the board prints its status every two seconds
    found = re.findall(r"board-status: agent main pid=\d+ VmHWM=(\d+)kB VmRSS=(\d+)kB", b.console_text())
    if not found:
        t.fail("the board printed no memory figures for its agent")
    hwm, rss = map(int, found[-1])
    print(f"rsprof-agent on the board: VmHWM {hwm} kB (peak, while tracing), VmRSS {rss} kB now")
    if hwm > 8192:
        t.fail(f"the agent's peak resident memory on the board is {hwm} kB, over 8 MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check", choices=["boot", "memory", "memory-rust", "stacks-O0", "stacks-O2", "tls", "attach", "fork", "killed",
                                      "rss", "stop"])
    ap.add_argument("--collector", required=True)
    ap.add_argument("--board", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--host-fork-fixture")
    a = ap.parse_args()
    b = Board(a)
    t0 = time.time()
    {"boot": check_boot, "stop": check_stop, "memory": check_memory, "memory-rust": check_memory_rust, "tls": check_tls, "attach": check_attach,
     "fork": check_fork, "killed": check_killed, "rss": check_rss,
     "stacks-O0": lambda b: check_stacks(b, "O0"), "stacks-O2": lambda b: check_stacks(b, "O2")}[a.check](b)
    print(f"{a.check}: {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
