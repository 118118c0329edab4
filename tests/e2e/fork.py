#!/usr/bin/env python3
"""A traced program's children (fork, clone into a copy of memory, vfork + exec, a shell's pipelines and command
substitutions) run untraced and unharmed: the program prints exactly what it prints untraced, every child
exits as it would, and the parent is still traced after each kind of child.

usage: fork.py shell --collector BIN --agent BIN [--server agent|gdbserver] [--gdb] -- /bin/sh -c SCRIPT
       fork.py workers --collector BIN --agent BIN [--server agent|gdbserver] [--gdb] -- FX-FORK-C MODE N
       fork.py no-fork-events --collector BIN --agent BIN --server gdbserver -- FX-FORK-C fork N
       fork.py cli --collector BIN --agent BIN -- COLLECTOR    (the --follow-fork option of COLLECTOR)
With --gdb, stock gdb debugs through the agent instead of the collector (breakpoints set by gdb).
no-fork-events hides fork-events+ and vfork-events+ from gdbserver's qSupported reply (a relay in between):
the collector must warn that children will die, and they do."""
import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402


def expect_eq(what, got, want):
    if got != want:
        t.fail(f"{what}: got {got!r}, expected {want!r}")
    print(f"ok {what}")


def untraced(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        t.fail(f"untraced run exited {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def start(a):
    """A server for the program, its output going to its own file; returns (server, path of that file)."""
    out_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"rsprof-fork-{os.getpid()}.out")
    out = open(out_path, "w")
    srv = t.Server(a.server, a.agent, a.argv, stdout=out)
    out.close()
    return srv, out_path


def read_output(path):
    text = open(path).read()
    os.unlink(path)
    return text


def traced_by_collector(a):
    """(program output, summary, profile path, server output) of a run traced by the memory module."""
    srv, out_path = start(a)
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    col = t.collector(a.collector, srv.port, "--module", "memory", "-o", prof, "--summary-json", summ,
                      "--follow-fork", a.follow, *(["--capture", a.capture] if a.capture else []))
    status = srv.wait()
    summary = json.load(open(summ))
    expect_eq("program exit code in the summary", summary["program"]["exit_code"], 0)
    if a.server == "agent":
        expect_eq("agent exit status (the program's)", status, 0)
    return read_output(out_path), summary, prof, srv.output() + col.stderr


def traced_by_gdb(a, breaks):
    """(program output, {function: hits}) with gdb counting hits of breakpoints at breaks through the server."""
    srv, out_path = start(a)
    script = ["set pagination off", "set confirm off", "python",
              "hits = {}",
              "class Counter(gdb.Breakpoint):",
              "    def stop(self):",
              "        hits[self.location] = hits.get(self.location, 0) + 1",
              "        return False",
              *[f"Counter({b!r})" for b in breaks],
              "end",
              f"target remote 127.0.0.1:{srv.port}",
              "continue",
              "python print('HITS', ' '.join(f'{k}={hits.get(k, 0)}' for k in " + repr(list(breaks)) + "))"]
    path = os.path.join(srv.tmp, "count.gdb")
    with open(path, "w") as f:
        f.write("\n".join(script) + "\n")
    r = subprocess.run(["gdb", "-nx", "-batch", "-x", path, a.argv[0]], capture_output=True, text=True,
                       timeout=300)
    srv.wait()
    m = re.search(r"^HITS (.*)$", r.stdout, re.M)
    if not m:
        t.fail("gdb did not finish:\n" + r.stdout[-3000:] + r.stderr[-3000:])
    if "exited normally" not in r.stdout:
        t.fail("gdb did not see the program exit normally:\n" + r.stdout[-3000:])
    hits = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    return read_output(out_path), hits


def workload_allocs(a, prof, func):
    """Allocations whose calling context holds func, from the profile."""
    out = t.report(a.collector, prof, "folded", "--metric", "allocations")
    total = 0
    for line in out.splitlines():
        stack, _, value = line.rpartition(" ")
        if func in stack.split(";"):
            total += int(value)
    return total


def hide_fork_events(port):
    """A loopback relay to port that removes fork-events+ and vfork-events+ from the collector's qSupported and
    from the reply (the packet naming qXfer:features:read+), so gdbserver traces no fork (it does when the
    client offers them) and the collector sees a server without them. Returns the relay's port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def pump(src, dst, marker):
        rewrite = True
        pending = b""
        while True:
            data = src.recv(65536)
            if not data:
                break
            if rewrite:
                pending += data
                m = re.search(rb"\$([^#$]*" + re.escape(marker) + rb"[^#]*)#..", pending)
                if m:
                    body = re.sub(rb"(?<=[:;])v?fork-events\+;?|;v?fork-events\+$", b"", m.group(1))
                    packet = b"$" + body + b"#" + b"%02x" % (sum(body) % 256)
                    data, pending, rewrite = pending[:m.start()] + packet + pending[m.end():], b"", False
                elif b"$" not in pending:
                    data, pending = pending, b""  # acknowledgements before the reply: pass them on
                else:
                    continue  # the reply is still arriving
            dst.sendall(data)
        try:
            dst.shutdown(socket.SHUT_WR)  # a close would wait for the other direction's blocked recv
        except OSError:
            pass

    def serve():
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", port))
        for sock in (client, server):  # one packet per write, as the real ends do: no Nagle delays
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, server, b"qSupported:"), daemon=True).start()
        pump(server, client, b"qXfer:features:read+")

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def check_no_fork_events(a):
    """Without the process events the collector says what will happen to the children, and it happens."""
    srv, out_path = start(a)
    relay = hide_fork_events(srv.port)
    col = t.collector(a.collector, relay, "--module", "memory", "-o", os.path.join(srv.tmp, "p.drcctprof"),
                      "--follow-fork", a.follow)
    srv.wait()
    got = read_output(out_path)
    if "does not report forks (no fork-events+ in its qSupported reply)" not in col.stderr:
        t.fail("no warning about the missing fork events:\n" + col.stderr[-3000:])
    print("ok the collector warned that the server does not report forks")
    expect_eq("workers killed by the inherited breakpoints (SIGTRAP)", got.count("killed by signal 5"), 4)


def check_cli(a):
    """--follow-fork: 'yes' and 'no' are accepted (nothing listens on port 1: a connection error, 1), anything
    else is a bad value (2); --help lists it with yes as the default."""
    base = [a.argv[0], "--connect", "127.0.0.1:1", "--connect-timeout", "1s", "--retries", "0", "--module",
            "memory", "-o", os.devnull]
    for v in ("yes", "no"):
        r = subprocess.run(base + ["--follow-fork", v], capture_output=True, text=True, timeout=30)
        expect_eq(f"exit status of --follow-fork {v} (no server)", r.returncode, 1)
    r = subprocess.run(base + ["--follow-fork", "maybe"], capture_output=True, text=True, timeout=30)
    expect_eq("exit status of --follow-fork maybe", r.returncode, 2)
    r = subprocess.run([a.argv[0], "--help"], capture_output=True, text=True, timeout=30)
    if "--follow-fork yes|no" not in r.stdout or "yes (default)" not in r.stdout:
        t.fail("--help does not list --follow-fork with yes as the default")
    print("ok --help lists --follow-fork")


def check_shell(a):
    want = untraced(a.argv)
    if a.gdb:
        # malloc resolves once libc is loaded; its traps are in every child's copy of memory until removed.
        got, hits = traced_by_gdb(a, ["malloc"])
        if hits["malloc"] == 0:
            t.fail("gdb's breakpoint on malloc never stopped the shell")
    else:
        got, summary, _, log = traced_by_collector(a)
        if summary["memory"]["allocs"] == 0:
            t.fail("the collector saw no allocation of the shell itself")
        if "Trace/breakpoint trap" in log:
            t.fail("a child died of SIGTRAP:\n" + log[-3000:])
        if "; exec " in a.argv[-1]:
            execd = [p for p in summary.get("processes", []) if p["path"].endswith("fx-fork-c")]
            if not execd or execd[0]["allocs"] == 0 or execd[0]["ended"] != "exited":
                t.fail("the program the shell executed was not traced: " + json.dumps(summary.get("processes")))
            print(f"ok the exec'd program was traced ({execd[0]['allocs']} allocations)")
        if a.follow == "yes":
            # Against valgrind, in the environment it gives its programs (see valgrind_environment).
            argv = ["/usr/bin/env", "-i", *a.argv]
            b = argparse.Namespace(**{**vars(a), "argv": ["/usr/bin/env", "-i", *valgrind_environment(), *a.argv]})
            got2, summary2, _, _ = traced_by_collector(b)
            expect_eq("the traced shell's output (valgrind's environment)", got2, untraced(argv))
            compare_with_valgrind(argv, summary2)
    expect_eq("the traced shell's output", got, want)


def valgrind_per_process(argv):
    """[(program, (allocs, frees, bytes allocated))] for every process image valgrind --trace-children=yes
    reports a total for (an image that executed another reports none: its process goes on as the new one)."""
    out = subprocess.run(["valgrind", "--tool=memcheck", "--leak-check=no", "--run-libc-freeres=no",
                          "--run-cxx-freeres=no", "--trace-children=yes", *argv],
                         capture_output=True, text=True, timeout=600)
    command, result = {}, []
    for line in out.stderr.splitlines():
        m = re.match(r"==(\d+)== Parent PID: (\d+)", line)
        if m and m.group(1) not in command and m.group(2) in command:
            command[m.group(1)] = command[m.group(2)]  # forked, no exec (yet): its parent's program
        m = re.match(r"==(\d+)== Command: (\S+)", line)
        if m:
            command[m.group(1)] = os.path.basename(os.path.realpath(shutil.which(m.group(2)) or m.group(2)))
        m = re.match(r"==(\d+)== +total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated", line)
        if m:
            result.append((command.get(m.group(1), "?"), tuple(int(g.replace(",", "")) for g in m.groups()[1:])))
    if not result:
        t.fail("no heap totals from valgrind:\n" + out.stderr[-2000:])
    return result


def ours_per_process(summary):
    """The same from the summary: each image that exited, with what its parent had at the fork (valgrind's
    counters live in the process, so a forked child's totals include them)."""
    return [(os.path.basename(p["path"]), (p["allocs"] + p["inherited"]["allocs"], p["frees"] + p["inherited"]["frees"],
             p["bytes_allocated"] + p["inherited"]["bytes_allocated"]))
            for p in summary["processes"] if p["ended"] in ("exited", "killed")]


def compare_with_valgrind(argv, summary):
    """Every exited process image's totals equal valgrind's for one of its processes (those that executed a
    program say which: valgrind names no program for a forked child), and so do the sums."""
    theirs, ours = sorted(valgrind_per_process(argv), key=lambda x: x[1]), sorted(ours_per_process(summary), key=lambda x: x[1])
    expect_eq("allocs, frees and bytes allocated of each process vs valgrind --trace-children=yes",
              [v for _, v in ours], [v for _, v in theirs])
    named = {(p, v) for p, v in theirs if p != "?"}
    expect_eq("the programs of those valgrind names", sorted(x for x in ours if x[1] in {v for _, v in named}),
              sorted(named))
    expect_eq("the totals summed over all processes", [sum(x) for x in zip(*(v for _, v in ours))],
              [sum(x) for x in zip(*(v for _, v in theirs))])


def valgrind_environment():
    """The variables valgrind --trace-children=yes adds to the environment of every program it runs (its
    LD_PRELOAD, VALGRIND_LIB), with LD_PRELOAD renamed to a name of the same length that loads nothing. A shell
    copies its environment into its own variables, so it allocates for them: the traced shell gets the same
    ones to count the same."""
    out = subprocess.run(["valgrind", "-q", "--trace-children=yes", "/usr/bin/env", "-i", "/usr/bin/env"],
                         capture_output=True, text=True, timeout=120).stdout
    return [("LD_PRELOAX" + v[len("LD_PRELOAD"):]) if v.startswith("LD_PRELOAD=") else v
            for v in out.splitlines() if "=" in v]


def check_workers_followed(a):
    """--follow-fork yes: every worker exits 0 and is traced under its own process, with the allocations of its
    rounds; for fork (no exec) each process's totals equal valgrind's per-process ones."""
    want = untraced(a.argv)
    n, mode = int(a.argv[-1]), a.argv[-2]
    got, summary, prof, log = traced_by_collector(a)
    expect_eq("the traced program's output", got, want)
    if "Trace/breakpoint trap" in log:
        t.fail("a child died of SIGTRAP:\n" + log[-3000:])
    main = summary["program"]["pid"]
    workers = [p for p in summary.get("processes", []) if p["parent"] == main and p["ended"] == "exited"]
    if mode == "vfork-exec" and a.server == "gdbserver":
        if "vforked children are not followed through this server" not in log:
            t.fail("no warning that vforked children are not followed through gdbserver:\n" + log[-3000:])
        expect_eq("vforked workers followed through gdbserver", len(workers), 0)
        return
    expect_eq("worker processes followed to their exit", len(workers), 4)
    expect_eq("their exit codes", [p["exit_code"] for p in workers], [0] * 4)
    # Each worker's rounds, from the profile: its thread's (tid = pid) contexts through worker_round.
    out = t.report(a.collector, prof, "folded", "--metric", "allocations")
    per = {}
    for line in out.splitlines():
        stack, _, value = line.rpartition(" ")
        frames = stack.split(";")
        if "worker_round" in frames:
            per[frames[0]] = per.get(frames[0], 0) + int(value)
    per_round = 4
    expect_eq("allocations in worker_round per worker process", sorted(per.values()),
              [per_round * (w + 1) * n for w in range(4)])
    expect_eq("worker threads are the worker processes", sorted(per), sorted(f"THREAD[{p['pid']}]" for p in workers))
    if mode == "fork":
        compare_with_valgrind(a.argv, summary)
    if a.capture:
        expect_eq("capture mode", summary["capture"]["mode"], a.capture)


def check_workers(a):
    if a.follow == "yes":
        return check_workers_followed(a)
    want = untraced(a.argv)
    n = int(a.argv[-1])
    if a.gdb:
        got, hits = traced_by_gdb(a, ["parent_round", "worker_round"])
        expect_eq("the traced program's output", got, want)
        expect_eq("gdb's stops in parent_round (before and after the workers)", hits["parent_round"], 2 * n)
        expect_eq("gdb's stops in the workers' worker_round (they are not followed)", hits["worker_round"], 0)
        return
    got, summary, prof, _ = traced_by_collector(a)
    expect_eq("the traced program's output", got, want)
    per_round = 4
    expect_eq("allocations in parent_round's contexts", workload_allocs(a, prof, "parent_round"), 2 * n * per_round)
    expect_eq("allocations in worker_round's contexts (workers are not followed)",
              workload_allocs(a, prof, "worker_round"), 0)
    # Twice the rounds: the summary grows by exactly the parent's extra allocations, none of the workers'.
    b = argparse.Namespace(**{**vars(a), "argv": a.argv[:-1] + [str(2 * n)]})
    want2 = untraced(b.argv)
    got2, summary2, _, _ = traced_by_collector(b)
    expect_eq("the traced program's output (twice the rounds)", got2, want2)
    parent = [int(re.search(r"parent allocs=(\d+)", w).group(1)) for w in (want, want2)]
    expect_eq("extra allocations counted with twice the rounds (the parent's only)",
              summary2["memory"]["allocs"] - summary["memory"]["allocs"], parent[1] - parent[0])
    # Each extra event is one of those allocations or their frees: no worker's call reached the collector.
    delta = {k: summary2[k] - summary[k] for k in ("events",)}
    delta.update({k: summary2["memory"][k] - summary["memory"][k] for k in ("allocs", "frees")})
    expect_eq("extra events with twice the rounds (the parent's allocations and frees)", delta["events"],
              delta["allocs"] + delta["frees"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("check", choices=["shell", "workers", "no-fork-events", "cli"])
    p.add_argument("--collector", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--server", default="agent", choices=["agent", "gdbserver"])
    p.add_argument("--gdb", action="store_true")
    p.add_argument("--follow", default="no", choices=["yes", "no"], help="the collector's --follow-fork")
    p.add_argument("--capture", choices=["agent", "roundtrip", "inprocess"], help="the collector's --capture")
    p.add_argument("argv", nargs="+")
    a = p.parse_args()
    if a.check == "cli":
        return check_cli(a)
    t.require_ptrace()
    # Children killed by SIGTRAP (the defect, and no-fork-events) would dump core: slow, and files left behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if a.server == "gdbserver" and not shutil.which("gdbserver"):
        t.skip("gdbserver is not installed")
    {"shell": check_shell, "workers": check_workers, "no-fork-events": check_no_fork_events}[a.check](a)


if __name__ == "__main__":
    main()
