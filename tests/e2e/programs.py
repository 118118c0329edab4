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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()
    t.require_ptrace()
    {"multi": check_multi}[a.check](a)


if __name__ == "__main__":
    main()
