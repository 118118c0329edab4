#!/usr/bin/env python3
"""End-to-end checks of what real programs and lab pipelines need from the collector: extended mode, exit
statuses, truncated stacks, --print-stacks, unknown frees.

usage: programs.py CHECK --collector BIN --agent BIN [options] -- PROGRAM [ARGS...]
CHECK is one of: multi, exit-status, truncation, print-stacks, thread-exit.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()
    t.require_ptrace()
    {"multi": check_multi, "exit-status": check_exit_status}[a.check](a)


if __name__ == "__main__":
    main()
