#!/usr/bin/env python3
"""End-to-end checks of what real programs and lab pipelines need from the collector: extended mode, exit
statuses, truncated stacks, --print-stacks, unknown frees.

usage: programs.py CHECK --collector BIN --agent BIN [options] -- PROGRAM [ARGS...]
CHECK is one of: multi, exit-status, truncation, print-stacks, thread-exit, agent-deep, agent-nocfi,
agent-dlopen.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402


def fixture_lines(text):
    """{key: int} for each line of the program's output that holds key=value pairs."""
    return [{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", ln)} for ln in text.splitlines()
            if re.search(r"\w+=\d+", ln)]


def expect_eq(what, got, want):
    if got != want:
        t.fail(f"{what}: got {got}, expected {want}")
    print(f"ok {what} = {got}")


def valgrind_totals(argv):
    """(allocs, frees, bytes allocated) from valgrind's 'total heap usage' line. Neither glibc's nor libstdc++'s
    exit-time cleanup runs: the program never makes those calls itself, so no tracer can see them."""
    out = subprocess.run(["valgrind", "--tool=memcheck", "--leak-check=no", "--run-libc-freeres=no",
                          "--run-cxx-freeres=no", *argv], capture_output=True, text=True, timeout=600)
    m = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated", out.stderr)
    if not m:
        t.fail("no heap totals from valgrind:\n" + out.stderr[-2000:])
    return tuple(int(g.replace(",", "")) for g in m.groups())


def check_multi(a):
    """One agent in extended mode (--multi, as deploy/rsprof-agent.service runs it) serves three collector runs
    in a row: two of its own program (vRun with an empty file name), one given with --run and other arguments.
    Each run's counts equal what the program says it did, and the agent is still serving after each."""
    srv = t.Server("agent", a.agent, a.argv, extra=["--multi"])
    runs = [[], []]
    rounds = int(a.argv[-1])
    runs.append(["--run", *a.argv[:-1], str(rounds + 3)])
    for i, extra in enumerate(runs):
        summ = os.path.join(srv.tmp, f"s{i}.json")
        t.collector(a.collector, srv.port, "--module", "memory", "--summary-json", summ, *extra)
        if srv.proc.poll() is not None:
            t.fail(f"the agent exited after run {i + 1}:\n{srv.output()}")
        counts = fixture_lines(srv.output())
        if len(counts) != i + 1:
            t.fail(f"run {i + 1}: the program printed {len(counts)} count lines, expected {i + 1}:\n{srv.output()}")
        mine, s = counts[-1], json.load(open(summ))
        expect_eq(f"run {i + 1}: program ended with status 0", (s["program"]["ended"], s["program"]["exit_code"]),
                  (True, 0))
        expect_eq(f"run {i + 1}: allocs vs the program's own count", s["memory"]["allocs"], mine["allocs"])
        expect_eq(f"run {i + 1}: frees vs the program's own count", s["memory"]["frees"], mine["frees"])
        expect_eq(f"run {i + 1}: bytes vs the program's own count", s["memory"]["bytes_allocated"], mine["bytes"])
    expect_eq("allocations of the --run run (more rounds)", counts[-1]["allocs"] > counts[0]["allocs"], True)


def check_exit_status(a):
    """The documented exit statuses and messages. argv: the fx-alloc-c and fx-leak-c fixtures.

    An output path that cannot be written ends the collector at once with status 1 and a message naming the
    path, before the program runs; each fired threshold gets one line naming it and the measured value; the
    agent exits 128 + SIGKILL when its program was killed (--kill-at-end, SIGTERM to the agent) and
    128 + the signal when the program crashed."""
    alloc, leak = a.argv[0], a.argv[1]
    tmp = tempfile.mkdtemp(prefix="rsprof-e2e-status-")
    regular = os.path.join(tmp, "file")
    open(regular, "w").close()
    bad_paths = [os.path.join(tmp, "missing", "out"), tmp, os.path.join(regular, "out")]
    for opt in ("-o", "--summary", "--summary-json", "--print-stacks"):
        for path in bad_paths:
            srv = t.Server("agent", a.agent, [alloc, "3"])
            out = t.collector(a.collector, srv.port, "--module", "memory", opt, path, check=False)
            expect_eq(f"collector status with {opt} {path}", out.returncode, 1)
            if f"cannot write {path}" not in out.stderr:
                t.fail(f"no message naming {path}:\n{out.stderr}")
            if fixture_lines(srv.output()):
                t.fail(f"the program ran although {opt} {path} cannot be written:\n{srv.output()}")
            srv.close()
            if os.path.exists(os.path.join(tmp, "missing")) or os.listdir(tmp) != ["file"]:
                t.fail(f"checking {path} left files behind: {os.listdir(tmp)}")
    print("ok every unwritable output path ends the collector with status 1 before the program runs")

    # Thresholds: all three fire at once (the first, --fail-on-leak, sets the status), then one alone.
    for extra, want, lines in ((["--fail-on-leak", "--max-peak", "100", "--max-allocs", "10"], 3, 3),
                               (["--max-peak", "100"], 4, 1), (["--max-allocs", "10"], 5, 1)):
        srv = t.Server("agent", a.agent, [leak, "5"])
        summ = os.path.join(srv.tmp, "s.json")
        out = t.collector(a.collector, srv.port, "--module", "memory", "--summary-json", summ, *extra, check=False)
        srv.wait()
        m = json.load(open(summ))["memory"]
        expect_eq(f"collector status with {' '.join(extra)}", out.returncode, want)
        expected = {
            "--fail-on-leak": f"rsprof-collector: --fail-on-leak: {m['leaked_bytes']} bytes in "
                              f"{m['leaked_blocks']} blocks still allocated at the end",
            "--max-peak": f"rsprof-collector: --max-peak 100 exceeded: peak {m['peak_bytes']} bytes",
            "--max-allocs": f"rsprof-collector: --max-allocs 10 exceeded: {m['allocs']} allocations",
        }
        got = [ln for ln in out.stderr.splitlines() if "--fail-on-leak" in ln or "exceeded" in ln]
        want_lines = [expected[x] for x in extra if x in expected]
        expect_eq(f"threshold lines with {' '.join(extra)}", got, want_lines)
        expect_eq("threshold line count", len(got), lines)

    # The agent's own status: the program killed at the end of a --duration run with --kill-at-end.
    srv = t.Server("agent", a.agent, [alloc, "5000000"])
    t.collector(a.collector, srv.port, "--module", "memory", "--duration", "1s", "--kill-at-end",
                "--summary-json", os.path.join(srv.tmp, "s.json"))
    expect_eq("agent status after --kill-at-end", srv.wait(), 128 + signal.SIGKILL)
    # SIGTERM to an agent whose program waits for a client: it kills the program and says so.
    srv = t.Server("agent", a.agent, [alloc, "3"])
    srv.proc.send_signal(signal.SIGTERM)
    expect_eq("agent status after SIGTERM", srv.wait(), 128 + signal.SIGKILL)
    # The program crashes: the collector says 6, the agent 128 + SIGSEGV.
    srv = t.Server("agent", a.agent, ["/bin/sh", "-c", "echo started && kill -SEGV $$"])
    out = t.collector(a.collector, srv.port, "--module", "memory", "--summary-json",
                      os.path.join(srv.tmp, "s.json"), check=False)
    expect_eq("collector status after the program's crash", out.returncode, 6)
    expect_eq("agent status after the program's crash", srv.wait(), 128 + signal.SIGSEGV)


def gdb_bt_at(argv, caller, func):
    """gdb's bt at the first call of func made from caller (breakpoint at func's first instruction, as the
    collector's), as (function, file:line or None) frames, past main as the collector unwinds."""
    script = tempfile.NamedTemporaryFile("w", suffix=".gdb", delete=False)
    script.write("set pagination off\nset confirm off\nset width 0\nset backtrace past-main on\n"
                 f"break {caller}\nrun\nbreak *{func}\ncontinue\necho ===BT===\\n\nbt\nkill\n")
    script.close()
    out = subprocess.run(["gdb", "-nx", "-batch", "-iex", "set debug-file-directory /nonexistent", "-x",
                          script.name, "--args", *argv], capture_output=True, text=True, timeout=300)
    os.unlink(script.name)
    frames = [t.gdb_frame(ln) for ln in out.stdout.split("===BT===", 1)[-1].splitlines() if ln.startswith("#")]
    if not frames or None in frames:
        t.fail("no usable bt from gdb:\n" + out.stdout[-3000:] + out.stderr[-2000:])
    return frames


def summary_truncated(text):
    m = re.search(r"^truncated stacks: (\d+) of (\d+)(.*)$", text, re.M)
    if not m:
        t.fail("the text summary has no truncated-stacks line:\n" + text[:2000])
    return int(m.group(1)), int(m.group(2)), m.group(3)


def check_truncation(a):
    """A 2000-deep recursion allocating at the bottom (fx-deep ROUNDS): with the default options no stack is
    truncated and each deep allocation's stack equals gdb's bt at the same malloc, frame by frame; with a
    small --stack-size every deep allocation is truncated, and stderr and both summaries say how many."""
    rounds = int(a.argv[1])
    srv = t.Server("agent", a.agent, a.argv)
    stacks, summ, text = (os.path.join(srv.tmp, n) for n in ("stacks.txt", "s.json", "s.txt"))
    out = t.collector(a.collector, srv.port, "--module", "memory", "--print-stacks", stacks, "--summary-json", summ,
                      "--summary", text, "--system-debug-dir", "")
    srv.wait()
    s = json.load(open(summ))
    expect_eq("truncated stacks (JSON), default options", s["truncated_stacks"], 0)
    expect_eq("truncated stacks (text), default options", summary_truncated(open(text).read())[0], 0)
    if "truncated" in out.stderr:
        t.fail("a warning about truncated stacks although none was:\n" + out.stderr)
    deep = [st for st in t.collector_stacks(stacks) if len(st) > 1 and st[1][0] == "deep_leaf"]
    expect_eq("deep allocations seen", len(deep), rounds)
    # Events the agent captures itself carry the whole stack (up to capture_stack) from the start.
    agent = s.get("capture", {}).get("mode") == "agent"
    window = s["capture"]["capture_stack"] if agent else s["stack_window"]
    print(f"stack window {window} bytes first, {s['stack_window_refills']} refills" + (" (agent capture)" if agent else ""))
    if window <= 2048:
        t.fail(f"every deep stack needed more than the first window, yet it stayed at {window} bytes")
    gdb = gdb_bt_at(a.argv, "deep_leaf", "malloc")
    expect_eq("frames at the deep malloc: collector vs gdb's bt", len(deep[0]), len(gdb))
    for k, (ours, theirs) in enumerate(zip(deep[0], gdb)):
        # The program's frames must match exactly; libc's, named from its symbol tables without debug files,
        # may be named by another alias of the same address (__libc_malloc for malloc).
        if theirs[1] and ours != theirs:
            t.fail(f"frame {k}: collector {ours} != gdb {theirs}")
    print(f"ok the {sum(1 for f in gdb if f[1])} frames of the program equal gdb's, function and line")

    # A deliberately small cap: every deep allocation's stack is cut, and that is said everywhere.
    srv = t.Server("agent", a.agent, a.argv)
    out = t.collector(a.collector, srv.port, "--module", "memory", "--stack-size", "4096", "--summary-json", summ,
                      "--summary", text)
    srv.wait()
    s = json.load(open(summ))
    expect_eq("truncated stacks (JSON), --stack-size 4096", s["truncated_stacks"], rounds)
    expect_eq("window of the truncated stacks (JSON)", s["truncated_window"], 4096)
    n, total, detail = summary_truncated(open(text).read())
    expect_eq("truncated stacks (text), --stack-size 4096", (n, total), (rounds, s["stacks"]))
    expect_eq("text summary names the window", "at a 4096-byte stack window" in detail, True)
    warn = re.search(r"warn: (\d+) of (\d+) stacks were truncated at a (\d+)-byte stack window", out.stderr)
    if not warn:
        t.fail("no warning on stderr about the truncated stacks:\n" + out.stderr)
    expect_eq("truncated stacks (stderr)", tuple(map(int, warn.groups())), (rounds, s["stacks"], 4096))


ALLOC_KINDS = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc"}


def check_print_stacks(a):
    """--print-stacks lists every event, frees included, each with its kind, address and size and a stack that
    reaches the program's own code: as many as the summary's events, and their numbers add up to its totals."""
    srv = t.Server("agent", a.agent, a.argv)
    stacks, summ = os.path.join(srv.tmp, "stacks.txt"), os.path.join(srv.tmp, "s.json")
    t.collector(a.collector, srv.port, "--module", "memory", "--print-stacks", stacks, "--summary-json", summ)
    srv.wait()
    s = json.load(open(summ))
    events, cur = [], None
    for line in open(stacks):
        if line.startswith("event "):
            m = re.match(r"^event (\d+) thread (\d+) (\S+) addr=0x([0-9a-f]+)(?: size=(\d+))?(?: old=0x([0-9a-f]+))?$",
                         line.rstrip("\n"))
            if not m:
                t.fail(f"malformed event line: {line!r}")
            cur = {"n": int(m.group(1)), "kind": m.group(3), "addr": int(m.group(4), 16),
                   "size": None if m.group(5) is None else int(m.group(5)),
                   "old": int(m.group(6), 16) if m.group(6) else 0, "frames": []}
            events.append(cur)
        elif line.startswith("#") and cur is not None:
            cur["frames"].append(line.rstrip("\n"))
    expect_eq("events listed vs the summary's events", len(events), s["events"])
    expect_eq("events numbered in order", [e["n"] for e in events], list(range(len(events))))
    allocs = [e for e in events if e["kind"] in ALLOC_KINDS and e["addr"]]
    frees = [e for e in events if e["kind"] == "free" and e["addr"] and e["size"] is not None]
    mem = s["memory"]
    expect_eq("allocation events vs the summary's allocs", len(allocs), mem["allocs"])
    expect_eq("their sizes vs bytes_allocated", sum(e["size"] for e in allocs), mem["bytes_allocated"])
    expect_eq("free events (and reallocs of a block) vs the summary's frees",
              len(frees) + sum(1 for e in allocs if e["kind"] == "realloc" and e["old"]), mem["frees"])
    expect_eq("kinds listed", {e["kind"] for e in events} >= {"malloc", "calloc", "realloc", "free"}, True)
    src = os.path.basename(a.argv[0]) + ".c"
    no_stack = [e for e in events if not any(src in f for f in e["frames"])]
    expect_eq("events whose stack does not reach the program's code", len(no_stack), 0)


def check_thread_exit(a):
    """Threads that allocate and exit: allocations, frees and bytes equal valgrind's and the program's own,
    and no free counts as unknown (every block was allocated while traced). glibc's exit-time cleanup of each
    thread's cache (frees of chunks the program already freed, and of the cache itself) is not the program's
    doing and must not be counted at all; without libc's debug files too (--system-debug-dir '')."""
    va, vf, vb = valgrind_totals(a.argv)
    for debug in ([], ["--system-debug-dir", ""]):
        srv = t.Server("agent", a.agent, a.argv)
        summ = os.path.join(srv.tmp, "s.json")
        t.collector(a.collector, srv.port, "--module", "memory", "--summary-json", summ, *debug)
        expect_eq("program exit status", srv.wait(), 0)
        s = json.load(open(summ))
        mem, mine = s["memory"], fixture_lines(srv.output())[-1]
        label = " (no debug files)" if debug else ""
        expect_eq("allocs vs valgrind" + label, mem["allocs"], va)
        expect_eq("frees vs valgrind" + label, mem["frees"], vf)
        expect_eq("bytes allocated vs valgrind" + label, mem["bytes_allocated"], vb)
        expect_eq("unknown frees" + label, mem["unknown_frees"], 0)
        # The program's own blocks are a part of the totals (the rest: thread start-up's, e.g. TLS).
        if mem["allocs"] < mine["allocs"] or mem["frees"] < mine["frees"]:
            t.fail(f"fewer than the program's own counts: {mem} vs {mine}")
        print(f"glibc's thread-exit frees left out{label}: {s['memory_libc']['thread_exit_frees']}")
        if s["memory_libc"]["thread_exit_frees"] < mine["threads"]:
            t.fail("fewer thread-exit frees left out than threads: the cleanup was counted some other way")



def traced_stacks(a, mode, *extra):
    """One memory run (--capture mode): (the events' stacks from --print-stacks, the JSON summary)."""
    srv = t.Server("agent", a.agent, a.argv)
    stacks, summ = (os.path.join(srv.tmp, n) for n in ("stacks.txt", "s.json"))
    t.collector(a.collector, srv.port, "--capture", mode, "--module", "memory", "--print-stacks", stacks,
                "--summary-json", summ, "--system-debug-dir", "", *extra)
    srv.wait()
    return t.collector_stacks(stacks), json.load(open(summ))


def expect_same_stacks(agent, roundtrip, pick, what):
    """The picked events' stacks are equal in both modes, event by event, frame by frame."""
    sa = [x for x in agent if pick(x)]
    sr = [x for x in roundtrip if pick(x)]
    expect_eq(f"{what}: events in both modes", len(sa), len(sr))
    for i, (x, y) in enumerate(zip(sa, sr)):
        if x != y:
            t.fail(f"{what}: event {i} differs between --capture agent and roundtrip:\nagent: {x}\nround: {y}")
    print(f"ok {what}: {len(sa)} stacks equal in both modes ({sum(len(x) for x in sa)} frames)")


def check_agent_deep(a):
    """fx-deep ROUNDS DEPTH PAD, deeper than the 128 KiB stack window the agent used to send: with the agent walking
    (rsprof-tables) every deep allocation's stack is whole, none unwound on the host, and equal frame by frame
    to a round-trip run's (which reads as much stack as it needs)."""
    rounds, depth = int(a.argv[1]), int(a.argv[2])
    agent, s = traced_stacks(a, "agent")
    c = s["capture"]
    print(f"capture: {c}")
    deep = [st for st in agent if len(st) > 1 and st[1][0] == "deep_leaf"]
    expect_eq("deep allocations", len(deep), rounds)
    expect_eq("frames of deep() in each", sorted({sum(1 for f in st if f[0] == "deep") for st in deep}), [depth + 1])
    expect_eq("truncated stacks", s["truncated_stacks"], 0)
    expect_eq("stacks unwound on the host", c["host_unwound"], 0)
    if c["agent_unwound"] < rounds or c["stacks_interned"] < 2:
        t.fail(f"the agent did not unwind the events itself: {c}")
    roundtrip, _ = traced_stacks(a, "roundtrip")
    expect_same_stacks(agent, roundtrip, lambda st: len(st) > 1 and st[1][0] == "deep_leaf", "deep stacks")


def check_agent_nocfi(a):
    """fx-nocfi N, built without unwind tables: the agent's walk cannot step its frames, so those events carry
    raw windows (counted: agent_raw_windows, host_unwound), and their stacks are still right: equal to a
    round-trip run's, through nocfi_leaf, nocfi_mid and main."""
    n = int(a.argv[1])
    agent, s = traced_stacks(a, "agent")
    c = s["capture"]
    print(f"capture: {c}")
    if c["agent_raw_windows"] < n or c["host_unwound"] < n:
        t.fail(f"expected at least {n} raw windows unwound on the host: {c}")
    leaf = [st for st in agent if len(st) > 1 and st[1][0] == "nocfi_leaf"]
    expect_eq("allocations in nocfi_leaf", len(leaf), n)
    expect_eq("their callers", {tuple(f[0] for f in st[1:4]) for st in leaf}, {("nocfi_leaf", "nocfi_mid", "main")})
    roundtrip, _ = traced_stacks(a, "roundtrip")
    expect_same_stacks(agent, roundtrip, lambda st: len(st) > 1 and st[1][0] == "nocfi_leaf", "no-CFI stacks")


def check_agent_dlopen(a):
    """fx-dlopen PLUGIN: the plugin (optimized, no frame pointers) is dlopen'ed mid-run and allocates 60 times;
    its table is uploaded at the linker's hook, before its code runs, so the agent walks every one of those
    events itself (no raw windows), and the stacks equal a round-trip run's."""
    agent, s = traced_stacks(a, "agent")
    c = s["capture"]
    print(f"capture: {c}")
    pick = lambda st: len(st) > 1 and st[1][0] == "plugin_alloc"  # noqa: E731
    plug = [st for st in agent if pick(st)]
    expect_eq("allocations in the plugin", len(plug), 60)
    expect_eq("their callers", {tuple(f[0] for f in st[1:4]) for st in plug}, {("plugin_alloc", "plugin_entry", "main")})
    expect_eq("raw windows", c["agent_raw_windows"], 0)
    expect_eq("stacks unwound on the host", c["host_unwound"], 0)
    if c["stacks_interned"] < 1 or c["agent_unwound"] < 60:
        t.fail(f"the agent did not unwind the plugin's events: {c}")
    roundtrip, _ = traced_stacks(a, "roundtrip")
    expect_same_stacks(agent, roundtrip, pick, "plugin stacks")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()
    t.require_ptrace()
    {"multi": check_multi, "exit-status": check_exit_status, "truncation": check_truncation, "print-stacks": check_print_stacks, "thread-exit": check_thread_exit,
     "agent-deep": check_agent_deep, "agent-nocfi": check_agent_nocfi, "agent-dlopen": check_agent_dlopen}[a.check](a)


if __name__ == "__main__":
    main()
