#!/usr/bin/env python3
"""Stack truth: the collector's stacks at each hit of a function equal gdb's bt at the same stops.

usage: stacks.py --collector BIN --server agent|gdbserver [--agent BIN] [--gdb-remote] [--unordered]
                 [--system-debug] [--wider-window] --break FUNC [--min N]
                 -- PROGRAM [ARGS...]
Both the collector (through our agent or stock gdbserver) and gdb stop at every call of FUNC in a
deterministic program; the i-th stacks must match frame by frame (function, and file:line where gdb has it)
down to the outermost frame gdb shows. With --gdb-remote, gdb runs through our agent too.
"""
import argparse
import json
import os
import subprocess
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent")
    ap.add_argument("--server", choices=["agent", "gdbserver"], default="agent")
    ap.add_argument("--gdb-remote", action="store_true")
    ap.add_argument("--break", dest="func", required=True)
    ap.add_argument("--min", type=int, default=50)
    ap.add_argument("--unordered", action="store_true", help="threads: compare the stacks as multisets")
    ap.add_argument("--wider-window", action="store_true",
                    help="the program's stacks often need more than the collector's first 2 KiB window: check "
                    "that it took wider windows (every stack is still compared in full either way)")
    ap.add_argument("--system-debug", action="store_true",
                    help="both sides read /usr/lib/debug (default: neither does, so results do not depend on "
                    "which -dbg packages the machine has)")
    ap.add_argument("--alloc", metavar="KIND",
                    help="the memory module's KIND events (malloc) with --capture inprocess, against gdb's bt at "
                         "--break (libc's entry point); frame 0 (libc's name for the function) is left out")
    ap.add_argument("--attach", action="store_true",
                    help="with --alloc: the agent attaches to the program waiting at its gate (FX_GATE_FD) and "
                         "injects the recorder")
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()
    t.require_ptrace()
    if not os.path.exists(a.argv[0]):
        t.skip(f"fixture {a.argv[0]} was not built")

    if a.alloc:
        return check_alloc(a)
    srv = t.Server(a.server, a.agent, a.argv)
    out_stacks = os.path.join(srv.tmp, "stacks.txt")
    profile = os.path.join(srv.tmp, "p.drcctprof")
    summary = os.path.join(srv.tmp, "s.json")
    debug = [] if a.system_debug else ["--system-debug-dir", ""]
    t.collector(a.collector, srv.port, "--trace", a.func, "--print-stacks", out_stacks, "-o", profile,
                "--summary-json", summary, *debug)
    srv.wait()
    ours = t.collector_stacks(out_stacks)
    if a.wider_window:
        s = json.load(open(summary))
        # Events the agent captures itself carry their own window (capture_stack), widened the same way.
        agent = s.get("capture", {}).get("mode") == "agent"
        window = s["capture"]["capture_stack"] if agent else s["stack_window"]
        print(f"stack window {window} bytes after {s['stack_window_refills']} refills"
              + (" (agent capture)" if agent else ""))
        if window <= 2048 or s["truncated_stacks"] != 0:
            t.fail(f"a quarter of the stacks need more than 2 KiB, yet the window stayed at {window} "
                   f"bytes (truncated stacks: {s['truncated_stacks']})")

    if a.gdb_remote:
        ref = t.Server("agent", a.agent, a.argv)
        theirs, raw = t.gdb_stacks(a.argv, a.func, len(ours), remote_port=ref.port, system_debug=a.system_debug)
        ref.close()
    else:
        theirs, raw = t.gdb_stacks(a.argv, a.func, len(ours), system_debug=a.system_debug)
    if not theirs:
        t.fail("gdb produced no stacks:\n" + raw.stdout[-2000:] + raw.stderr[-2000:])
    if a.unordered:
        ours, theirs = sorted(ours), sorted(theirs)
    t.compare_stacks(ours, theirs, f"{os.path.basename(a.argv[0])}@{a.func} via {a.server}", a.min)


def check_alloc(a):
    """Allocation stacks captured in-process (the recorder's own walk with the agent's tables), launched or
    attached, equal gdb's bt at libc's entry point for every call of the kind."""
    debug = ["--system-debug-dir", ""]
    prog = gate_w = None
    if a.attach:
        gate_r, gate_w = os.pipe()
        prog = subprocess.Popen(a.argv, pass_fds=(gate_r,), stdout=subprocess.DEVNULL,
                                env={**os.environ, "FX_GATE_FD": str(gate_r)})
        os.close(gate_r)
        time.sleep(0.2)
        srv = t.Server("agent", a.agent, [], extra=["--attach", str(prog.pid), "--log-level", "info"])
    else:
        srv = t.Server("agent", a.agent, a.argv)
    out_stacks = os.path.join(srv.tmp, "stacks.txt")
    cmd = [a.collector, "--connect", f"127.0.0.1:{srv.port}", "--no-progress", "--module", "memory",
           "--capture", "inprocess", "--print-stacks", out_stacks, "-o", os.path.join(srv.tmp, "p.drcctprof"),
           *debug]
    col = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if a.attach:
        deadline = time.time() + 30
        while "recorder loaded into process" not in srv.output() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.write(gate_w, b"\n")
        os.close(gate_w)
    out, err = col.communicate(timeout=240)
    if col.returncode != 0:
        t.fail(f"collector exited {col.returncode}:\n{err[-3000:]}")
    srv.wait()
    if prog:
        prog.wait(timeout=60)
    kinds = [line.split()[4] for line in open(out_stacks) if line.startswith("event ")]
    ours = [st[1:] for st, kind in zip(t.collector_stacks(out_stacks), kinds) if kind == a.alloc]
    theirs, raw = t.gdb_stacks(a.argv, a.func, len(ours))
    if not theirs:
        t.fail("gdb produced no stacks:\n" + raw.stdout[-2000:] + raw.stderr[-2000:])
    theirs = [st[1:] for st in theirs]
    if a.unordered:
        ours, theirs = sorted(ours), sorted(theirs)
    how = "attached" if a.attach else "launched"
    t.compare_stacks(ours, theirs, f"{os.path.basename(a.argv[0])}: {a.alloc} in-process, {how}", a.min)


if __name__ == "__main__":
    main()
