#!/usr/bin/env python3
"""End-to-end checks of the tracing modules against independent references (valgrind, the fixtures' own counts).

usage: modules.py CHECK --collector BIN --agent BIN [--server agent|gdbserver] [--module M] [--tls]
                  [--collector-option OPT] -- PROGRAM [ARGS...]
CHECK is one of: heap, heap-own-allocator, leak, thresholds, crash, threads, mutex, calls, calls-ifunc,
calls-ifunc-dlopen, stripped, clone, sigint, preload, stall, mixed, attach, heap-attach.
"""
import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402


def fixture_counts(text):
    """key=value pairs of the fixture's last line."""
    lines = [ln for ln in text.splitlines() if "=" in ln]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])} if lines else {}


_tls_dir = None


def tls_options():
    """(agent options, collector options) for mutual TLS with certificates made by deploy/make-tls.sh for
    "localhost" (made once per run)."""
    global _tls_dir
    if not shutil.which("openssl"):
        t.skip("openssl is not installed (needed to make the test certificates)")
    if _tls_dir is None:
        _tls_dir = tempfile.mkdtemp(prefix="rsprof-e2e-tls-")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "make-tls.sh")
        atexit.register(shutil.rmtree, _tls_dir, True)
        r = subprocess.run([script, _tls_dir, "localhost", "rsprof-host"], capture_output=True, text=True)
        if r.returncode != 0:
            t.fail("make-tls.sh failed: " + r.stderr)
    p = lambda name: os.path.join(_tls_dir, name)  # noqa: E731
    return (["--tls-cert", p("board.pem"), "--tls-key", p("board.key"), "--tls-ca", p("ca.pem")],
            ["--tls-ca", p("ca.pem"), "--tls-cert", p("host.pem"), "--tls-key", p("host.key"),
             "--log-level", "info"])  # info: the collector says the connection is TLS


_runs = []  # (capture mode, profile, summary) of every traced run, for --both-modes


def run_traced(a, *collector_args, agent_args=(), server=None):
    host, tls_agent, tls_collector = "127.0.0.1", [], []
    capture = getattr(a, "capture", None)
    if capture:
        collector_args = ("--capture", capture, *collector_args)
    if a.tls:
        host = "localhost"  # the name the agent's certificate is for
        tls_agent, tls_collector = tls_options()
    srv = t.Server(server or a.server, a.agent, a.argv, extra=[*tls_agent, *agent_args])
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    out = t.collector(a.collector, srv.port, "--module", a.module, "-o", prof, "--summary-json", summ,
                      *tls_collector, *a.collector_option, *collector_args, host=host)
    if a.tls and "(TLS)" not in out.stderr:
        t.fail("the collector did not report a TLS connection:\n" + out.stderr[-2000:])
    status = srv.wait()
    summary = json.load(open(summ))
    # Our agent offers rsprof-capture, so it captures unless told otherwise; gdbserver never does.
    want = capture or ("agent" if (server or a.server) == "agent" else "roundtrip")
    if summary["capture"]["mode"] != want:
        t.fail(f"capture mode {summary['capture']['mode']}, expected {want}")
    if want == "agent" and summary["events"] and summary["capture"]["events_streamed"] == 0:
        t.fail("agent capture, yet no event was streamed")
    _runs.append((want, prof, summary))
    return srv, prof, summary, out, status


def folded(a, prof, metric):
    """{stack tuple (outermost first): value} from report --format folded."""
    stacks = {}
    for line in t.report(a.collector, prof, "folded", "--metric", metric).splitlines():
        stack, _, value = line.rpartition(" ")
        if stack:
            key = tuple(stack.split(";"))
            stacks[key] = stacks.get(key, 0) + int(value)
    return stacks


def expect_eq(what, got, want):
    if got != want:
        t.fail(f"{what}: got {got}, expected {want}")
    print(f"ok {what} = {got}")


def expect_workload_counts(a, prof, counts):
    """The Rust workload's hand-kept counts equal the profile's sums over the workload's contexts (the runtime's
    own blocks, argument strings and the stdout buffer, are outside them)."""
    in_workload = re.compile(r"::workload::\w+_path$")
    for metric, key in (("allocations", "allocs"), ("frees", "frees"), ("bytes_allocated", "bytes")):
        got = sum(v for st, v in folded(a, prof, metric).items() if any(in_workload.search(f) for f in st))
        expect_eq(f"{metric} in the workload's contexts vs the program's own count", got, counts[key])


def check_heap(a):
    """Allocation count, free count and bytes allocated equal valgrind's totals for the same program and input."""
    srv, prof, s, _, status = run_traced(a)
    mem = s["memory"]
    va, vf, vb = t.valgrind_heap_totals(a.argv)
    if a.module == "memory":
        expect_eq("allocs vs valgrind", mem["allocs"], va)
        expect_eq("frees vs valgrind", mem["frees"], vf)
        expect_eq("bytes allocated vs valgrind", mem["bytes_allocated"], vb)
        # Traced from exec on, every freed block was seen allocated (a free inside __rust_dealloc is the same
        # release, not a second one); Rust's default allocator forwards to libc, where blocks end up counted.
        expect_eq("frees of blocks never seen allocated", mem["unknown_frees"], 0)
        if "memory_rust" in s:
            expect_eq("where Rust's allocations are counted", s["memory_rust"]["counted_at"], "libc")
            if "marker_allocs" in s["memory_rust"]:  # in-process, the stub over libc: no block counted twice
                expect_eq("blocks counted at the stub's marker", s["memory_rust"]["marker_allocs"], 0)
            if a.stop_cost:
                check_rust_stop_cost(a, s, va, vf)
        if a.round_trips:
            check_round_trips(a, s)
    else:
        # memtrace sees only what goes through the stub's allocator; valgrind also counts what the runtime
        # allocates with libc directly (e.g. pthread_getattr_np at start-up). That difference must not depend
        # on the workload: measure it on a run with no work and check it is the same.
        # The program counts its workload (the *_path functions) by hand; the runtime's own blocks (argument
        # strings, the stdout buffer) also pass through the stub, so compare the workload's contexts.
        expect_workload_counts(a, prof, fixture_counts(srv.output()))
        base_argv = a.argv[:-1] + ["0" * len(a.argv[-1])]
        ba, bf, bb = t.valgrind_heap_totals(base_argv)
        b2 = argparse.Namespace(**{**vars(a), "argv": base_argv})
        _, _, s0, _, _ = run_traced(b2)
        m0 = s0["memory"]
        expect_eq("allocs outside the stub (loaded run)", va - mem["allocs"], ba - m0["allocs"])
        expect_eq("frees outside the stub (loaded run)", vf - mem["frees"], bf - m0["frees"])
    expect_eq("program exit code", s["program"]["exit_code"], 0)
    check_target(a, s)
    if s["events"] < mem["allocs"]:
        t.fail("fewer events than allocations")


def check_target(a, s):
    """The summary names the target's architecture and the server: our agent says its version in qSupported."""
    expect_eq("target architecture", s["target"]["arch"], platform.machine())
    if a.server == "gdbserver":
        expect_eq("server", s["target"]["agent"], "gdbserver")
    elif not re.fullmatch(r"rsprof-agent \d+\.\d+\.\d+", s["target"]["agent"]):
        t.fail(f"the summary names the server {s['target']['agent']!r}, not rsprof-agent VERSION")
    else:
        print(f"ok server = {s['target']['agent']}")


def check_round_trips(a, s):
    """Through the agent (--capture roundtrip), the return breakpoints that read malloc's result are quiet: the agent records those
    hits and the next stop reply carries them, so only entry stops wait for the collector: one per event, plus
    one per posix_memalign, whose return handler reads memory (fx-alloc-c makes one per round). Without quiet
    breakpoints every allocation would add a second. Compared between runs of n and 2n rounds, so start-up and
    exit (free(NULL) stops at an entry without being an event) cancel out."""
    more_argv = a.argv[:-1] + [str(2 * int(a.argv[-1])).rjust(len(a.argv[-1]), "0")]
    if len(more_argv[-1]) != len(a.argv[-1]):
        t.fail(f"pick a round count whose double has as many digits as {a.argv[-1]}")
    _, _, s2, _, _ = run_traced(argparse.Namespace(**{**vars(a), "argv": more_argv}))
    rounds = int(more_argv[-1]) - int(a.argv[-1])
    if s["capture"]["mode"] == "agent":
        # The agent captures every event itself: more rounds stream more events and cost no stop at all.
        stops = s2["breakpoint_stops"] - s["breakpoint_stops"]
        streamed = s2["capture"]["events_streamed"] - s["capture"]["events_streamed"]
        events = s2["events"] - s["events"]
        print(f"{rounds} more rounds: {stops} more stops, {streamed} more streamed records, {events} more events")
        if stops != 0 or events <= 0 or streamed < events:
            t.fail(f"agent capture: {stops} more stops (expected 0) and {streamed} more streamed records for "
                   f"{events} more events")
        return
    waited = (s2["breakpoint_stops"] - s2["quiet_stops"]) - (s["breakpoint_stops"] - s["quiet_stops"])
    events = s2["events"] - s["events"]
    print(f"{rounds} more rounds: {s2['breakpoint_stops'] - s['breakpoint_stops']} more stops, "
          f"{s2['quiet_stops'] - s['quiet_stops']} of them handled by the agent alone, {events} more events")
    if waited > events + rounds:
        t.fail(f"{waited} more stops waited for the collector: more than one per event plus one per round "
               f"({events} + {rounds})")
    print(f"ok {waited} more stops waited for the collector, at most {events} + {rounds}")


def check_rust_stop_cost(a, s, va, vf):
    """Once Rust's entry points are gone, each call of an allocator over libc's costs at most two stops (entry and
    return at libc) and each free one, counting the calls as valgrind does (parked return breakpoints that other
    paths keep hitting, as with the stub's wrapper, are removed after a few such stops). Compared between two
    runs whose argument has the same length, so the runtime's own calls cancel out; with the Rust breakpoints
    still in place every Rust dealloc would cost a second stop."""
    more_argv = a.argv[:-1] + [str(2 * int(a.argv[-1])).rjust(len(a.argv[-1]), "0")]
    if len(more_argv[-1]) != len(a.argv[-1]):
        t.fail(f"pick a round count whose double has as many digits as {a.argv[-1]}")
    _, _, s2, _, _ = run_traced(argparse.Namespace(**{**vars(a), "argv": more_argv}))
    va2, vf2, _ = t.valgrind_heap_totals(more_argv)
    stops = s2["breakpoint_stops"] - s["breakpoint_stops"]
    bound = 2 * (va2 - va) + (vf2 - vf)
    print(f"breakpoint stops for {more_argv[-1]} rounds minus {a.argv[-1]}: {stops} (bound {bound})")
    if stops > bound:
        t.fail(f"the extra rounds cost {stops} stops, more than two per allocation and one per free ({bound})")


def check_heap_own_allocator(a):
    """A Rust program whose global allocator never calls libc: the memory module must keep Rust's entry points
    (dropping them, as it does when they forward to libc, would lose every Rust block).

    No exact count is possible here: rustc inlines an allocator defined in the program's own crate into the
    callers, so only the calls that still go through the __rust_alloc shim can stop at a breakpoint."""
    srv, prof, s, _, status = run_traced(a)
    expect_eq("where Rust's allocations are counted", s.get("memory_rust", {}).get("counted_at"), "rust")
    expect_eq("Rust calls seen reaching libc", s["memory_rust"]["calls_seen_reaching_libc"], 0)
    if s["memory"]["allocs"] == 0:
        t.fail("no allocation counted at all")
    expect_eq("program exit code", s["program"]["exit_code"], 0)


def check_heap_stub_markers(a):
    """A Rust program whose global allocator never calls libc (an arena), wrapped by the stub, in-process: the
    recorder reports the stub's marker calls (the collector points the marker's hook at it), so the memory
    module counts every Rust block. References: the same program's marker calls counted by memtrace's
    breakpoints (--capture agent), the program's own counts of its workload, and valgrind, which sees only what
    reaches libc: the memory module's totals minus its marker-counted blocks."""
    srv, prof, s, _, _ = run_traced(a)
    mem, rust = s["memory"], s.get("memory_rust", {})
    expect_eq("where Rust's allocations are counted", rust.get("counted_at"), "libc+markers")
    expect_workload_counts(a, prof, fixture_counts(srv.output()))
    mt = argparse.Namespace(**{**vars(a), "module": "memtrace", "capture": "agent"})
    _, _, smt, _, _ = run_traced(mt)
    expect_eq("marker allocations vs memtrace's marker breakpoints", rust["marker_allocs"], smt["memory"]["allocs"])
    expect_eq("marker frees vs memtrace's marker breakpoints", rust["marker_frees"], smt["memory"]["frees"])
    va, vf, vb = t.valgrind_heap_totals(a.argv)
    expect_eq("allocs at libc vs valgrind", mem["allocs"] - rust["marker_allocs"], va)
    expect_eq("frees at libc vs valgrind", mem["frees"] - rust["marker_frees"], vf)
    expect_eq("program exit code", s["program"]["exit_code"], 0)


def check_leak(a):
    """Exactly the three leaked blocks, at exactly their two allocating functions."""
    srv, prof, s, _, _ = run_traced(a)
    expect_leaks(a, prof, s)


def expect_leaks(a, prof, s):
    expect_eq("leaked bytes", s["memory"]["leaked_bytes"], 600)
    expect_eq("leaked blocks", s["memory"]["leaked_blocks"], 3)
    by_site = {}
    for stack, value in folded(a, prof, "leaked_bytes").items():
        if value == 0:
            continue
        site = next((f for f in stack if f in ("leak_a", "leak_b")), None)
        if site is None:
            t.fail(f"leak attributed to an unexpected context: {';'.join(stack)} {value}")
        by_site[site] = by_site.get(site, 0) + value
    expect_eq("bytes leaked from leak_a", by_site.get("leak_a"), 300)
    expect_eq("bytes leaked from leak_b", by_site.get("leak_b"), 300)
    blocks = folded(a, prof, "leaked_blocks")
    expect_eq("leaked blocks in the profile", sum(blocks.values()), 3)


def check_threads(a):
    """Totals equal valgrind's; each worker thread's allocations equal that thread's own count."""
    srv, prof, s, _, _ = run_traced(a)
    va, vf, vb = t.valgrind_heap_totals(a.argv)
    expect_eq("allocs vs valgrind", s["memory"]["allocs"], va)
    expect_eq("frees vs valgrind", s["memory"]["frees"], vf)
    expect_eq("bytes vs valgrind", s["memory"]["bytes_allocated"], vb)
    expect_thread_counts(a, prof, srv.output())


def expect_thread_counts(a, prof, output):
    """Each worker thread's allocations in the profile equal that thread's own count (from its output line)."""
    per_thread = {}
    for stack, value in folded(a, prof, "allocations").items():
        root = next((f for f in stack if f.startswith("THREAD[")), None)
        if root:
            per_thread[root] = per_thread.get(root, 0) + value
    workers = re.findall(r"thread=\d+ tid=(\d+) allocs=(\d+)", output)
    if len(workers) != 4:
        t.fail("the fixture did not report 4 threads:\n" + output)
    for tid, allocs in workers:
        expect_eq(f"allocations in THREAD[{tid}]", per_thread.get(f"THREAD[{tid}]"), int(allocs))


def check_thresholds(a):
    """--fail-on-leak, --max-peak and --max-allocs end with their documented exit codes (3, 4, 5), the outputs
    still written; limits the run stays within end with 0."""
    cases = [(["--fail-on-leak"], 3), (["--max-peak", "100"], 4), (["--max-allocs", "10"], 5),
             (["--max-peak", "1M", "--max-allocs", "100000"], 0)]
    for extra, want in cases:
        srv = t.Server(a.server, a.agent, a.argv)
        prof = os.path.join(srv.tmp, "p.drcctprof")
        summ = os.path.join(srv.tmp, "s.json")
        out = t.collector(a.collector, srv.port, "--module", a.module, "-o", prof, "--summary-json", summ, *extra,
                          check=False)
        srv.wait()
        expect_eq("leaked bytes in the summary", json.load(open(summ))["memory"]["leaked_bytes"], 600)
        expect_eq(f"exit status with {' '.join(extra)}", out.returncode, want)
        if not folded(a, prof, "allocations"):
            t.fail(f"no profile written with {' '.join(extra)}")


def check_crash(a):
    """A program killed by a signal mid-run: exit status 6, the signal in the summary, and what was collected
    up to the crash still written."""
    srv = t.Server(a.server, a.agent, a.argv)
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    out = t.collector(a.collector, srv.port, "--module", a.module, "-o", prof, "--summary-json", summ, check=False)
    srv.wait()
    expect_eq("collector exit status", out.returncode, 6)
    s = json.load(open(summ))
    expect_eq("signal in the summary", s["program"]["signal"], signal.SIGSEGV)
    allocs = sum(folded(a, prof, "allocations").values())
    if allocs <= 0 or allocs != s["memory"]["allocs"]:
        t.fail(f"the profile written after the crash has {allocs} allocations, the summary {s['memory']['allocs']}")
    print(f"ok {allocs} allocations before the crash in the profile")


def check_mutex(a):
    """At least ROUNDS contended acquisitions in waiter_lock, with wait times of the program's own order."""
    srv, prof, s, _, _ = run_traced(a)
    counts = fixture_counts(srv.output())
    rounds = counts["rounds"]
    contended = folded(a, prof, "contended_locks")
    at_waiter = sum(v for st, v in contended.items() if any("waiter_lock" in f for f in st))
    if at_waiter < rounds:
        t.fail(f"only {at_waiter} contended acquisitions at waiter_lock, expected at least {rounds}")
    print(f"ok {at_waiter} contended acquisitions at waiter_lock (rounds={rounds})")
    wait_us = sum(v for st, v in folded(a, prof, "lock_wait").items() if any("waiter_lock" in f for f in st))
    own = counts.get("wait_us_total", 0)
    if a.server == "agent":
        # Through our agent the wait runs from the entry stop to the return stop on the agent's clock
        # (rsprof-stoptime). The program's span also covers the call and the return themselves: close,
        # within a factor of two.
        lo, hi = own / 2, own * 2
        # With --round-trips the return breakpoint must be quiet: one host round trip per contended lock
        # (where the return site's first instruction can be emulated, as in fx-mutex-c).
        if a.round_trips and s["capture"]["mode"] == "roundtrip" and s["quiet_stops"] < rounds:
            t.fail(f"only {s['quiet_stops']} quiet stops for {rounds} contended locks: the returns waited for us")
    else:
        # On the collector's clock, from receiving the entry stop to receiving the return stop: of the right
        # order, within a factor of five either way.
        lo, hi = own / 5, own * 5 + rounds * 100000
    if not (lo <= wait_us <= hi):
        t.fail(f"wait {wait_us} us at waiter_lock is not within [{lo:.0f}, {hi:.0f}] (the program measured {own} us)")
    print(f"ok wait {wait_us} us vs the program's own {own} us")


def per_caller(stacks, leaf_match):
    """{caller function: count} for stacks whose leaf matches."""
    out = {}
    for stack, value in stacks.items():
        if not stack or not leaf_match(stack[-1]):
            continue
        out[stack[-2]] = out.get(stack[-2], 0) + value
    return out


def check_calls(a):
    _, prof, s, _, _ = run_traced(a, "--trace", "target_fn")
    n = int(a.argv[-1])
    got = per_caller(folded(a, prof, "calls"), lambda f: f == "target_fn")
    expect_eq("calls per call site", got, {"site_a": 5 * n, "site_b": 7 * n, "site_c": 11 * n})


def gdb_break_counts(argv, name):
    """{(caller function, caller's file): hits} of gdb's own `break NAME` over one run (no separate debug files,
    as the collector runs here): for an indirect function gdb breaks at the implementation the resolver picks."""
    script = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    script.write(f"""import gdb, os
counts = {{}}
class Counter(gdb.Breakpoint):
    def stop(self):
        caller = gdb.newest_frame().older()
        where = (caller.name() if caller else None) or "??", os.path.basename(gdb.solib_name(caller.pc()) or "")
        counts[where] = counts.get(where, 0) + 1
        return False
gdb.execute("set breakpoint pending on")
Counter({name!r})
gdb.execute("run > /dev/null")
for (fn, lib), n in sorted(counts.items()):
    print("rsprof-hits %d %s %s" % (n, fn, lib or "-"))
""")
    script.close()
    out = subprocess.run(["gdb", "-nx", "-batch", "-iex", "set debug-file-directory /nonexistent", "-x", script.name,
                          "--args", *argv], capture_output=True, text=True, timeout=300)
    os.unlink(script.name)
    hits = {}
    for m in re.finditer(r"^rsprof-hits (\d+) (\S+) (\S+)$", out.stdout, re.M):
        hits[(m.group(2), m.group(3))] = int(m.group(1))
    if not hits:
        t.fail("gdb counted no hits:\n" + out.stdout[-2000:] + out.stderr[-2000:])
    return hits


def check_calls_ifunc(a):
    """--trace strlen (a GNU indirect function) counts the calls of the implementation its resolver picked: the
    program's own number, and gdb's hits of `break strlen`. gdb also stops once in the resolver when the dynamic
    linker runs it to bind the program's PLT slot lazily; that is not a call of strlen and is left out."""
    srv, prof, s, out, _ = run_traced(a, "--trace", "strlen", "--system-debug-dir", "", "--summary", "-")
    n = fixture_counts(srv.output())["strlen_calls"]
    got = per_caller(folded(a, prof, "calls"), lambda f: True)
    expect_eq("strlen calls from measure vs the program's own count", got.get("measure"), n)
    if a.bind_now:
        # Under BIND_NOW gdb 13 finds no resolved slot for strlen and breaks at the resolver, which ran during
        # relocation: it counts nothing. The program's own count is the reference here, and the total too.
        expect_eq("strlen calls in all vs the program's own count", s["calls"]["calls"], n)
    else:
        hits = gdb_break_counts(a.argv, "strlen")
        from_linker = sum(v for (fn, lib), v in hits.items() if lib.startswith("ld-linux"))
        print(f"gdb hits: {hits}")
        expect_eq("strlen calls from measure vs gdb", got.get("measure"), hits.get(("measure", "-")))
        expect_eq("strlen calls in all vs gdb (the linker's resolver call left out)", s["calls"]["calls"],
                  sum(hits.values()) - from_linker)
    ind = s["calls"].get("indirect_functions", [])
    expect_eq("indirect functions in the JSON summary", [f["name"] for f in ind], ["strlen"])
    if not ind[0]["implementation"]:
        t.fail("no implementation named in the JSON summary")
    line = f"strlen is an indirect function: traced its implementation {ind[0]['implementation']}"
    if line not in out.stdout:
        t.fail(f"the text summary does not say '{line}':\n{out.stdout}")
    print(f"ok the summaries say: {line}")


def check_calls_ifunc_dlopen(a):
    """--trace plugin_len, an indirect function of a library dlopen'ed after start-up: the library is set up
    before the dynamic linker relocates it, so the implementation comes from the resolver's return value; every
    call the program makes is counted, under the implementation's name."""
    srv, prof, s, out, _ = run_traced(a, "--trace", "plugin_len", "--summary", "-")
    n = fixture_counts(srv.output())["ifunc_calls"]
    expect_eq("plugin_len calls vs the program's own count", s["calls"]["calls"], n)
    expect_eq("calls per caller", per_caller(folded(a, prof, "calls"), lambda f: True), {"plugin_measure": n})
    expect_eq("indirect functions in the JSON summary", s["calls"].get("indirect_functions"),
              [{"name": "plugin_len", "implementation": "plugin_len_impl"}])
    if "plugin_len is an indirect function: traced its implementation plugin_len_impl" not in out.stdout:
        t.fail("the text summary does not name the implementation:\n" + out.stdout)


def check_stripped(a):
    """A stripped copy of the fixture: frames without a symbol are module+offset, the same in two runs although
    ASLR moves the program; the summaries list the module with its build-id and say how to add symbols; and
    `report --debug-dir` with the debug file made before stripping names them as the unstripped program's
    profile does."""
    for tool in ("objcopy", "strip", "readelf"):
        if not shutil.which(tool):
            t.skip(f"binutils' {tool} is not installed")
    work = tempfile.mkdtemp(prefix="rsprof-e2e-stripped-")
    atexit.register(shutil.rmtree, work, True)
    prog = os.path.join(work, "prog")
    shutil.copy(a.argv[0], prog)
    notes = subprocess.run(["readelf", "-n", prog], capture_output=True, text=True).stdout
    build_id = re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
    debug_dir = os.path.join(work, "debug")
    os.makedirs(os.path.join(debug_dir, ".build-id", build_id[:2]))
    subprocess.run(["objcopy", "--only-keep-debug", prog,
                    os.path.join(debug_dir, ".build-id", build_id[:2], build_id[2:] + ".debug")], check=True)
    subprocess.run(["strip", prog], check=True)
    opts = ["--system-debug-dir", "", "--summary", "-", "--log-level", "info"]

    def stacks(prof, *extra):
        """Folded stacks of a profile, without the thread root (thread ids differ between runs)."""
        out = t.report(a.collector, prof, "folded", *extra)
        return sorted(re.sub(r"^THREAD\[\d+\];", "", line) for line in out.splitlines())

    runs = []
    for i in range(2):
        listing = os.path.join(work, f"stacks{i}")
        b = argparse.Namespace(**{**vars(a), "argv": [prog, *a.argv[1:]]})
        _, prof, s, out, _ = run_traced(b, *opts, "--print-stacks", listing)
        addrs = set(re.findall(r"^#\d+ (0x[0-9a-f]+) prog\+0x", open(listing).read(), re.M))
        runs.append((prof, s, out, addrs))
    (prof0, s0, out0, addrs0), (prof1, _, _, addrs1) = runs
    if not addrs0 or addrs0 & addrs1:
        t.fail(f"the program's frames did not move between runs (is ASLR off?): {sorted(addrs0 & addrs1)[:5]}")
    print(f"ok ASLR on: {len(addrs0)} distinct program addresses in run 1, none of them in run 2")
    f0, f1 = stacks(prof0), stacks(prof1)
    if not any(re.search(r"(^|;)prog\+0x[0-9a-f]+(;| )", line) for line in f0):
        t.fail("no prog+0x... frame in the stripped program's profile:\n" + "\n".join(f0[:5]))
    expect_eq("stacks of the stripped program in two runs", f1, f0)
    listed = {m["path"]: m["build_id"] for m in s0["modules_without_symbols"]}
    expect_eq("the stripped program's build-id in modules_without_symbols", listed.get(prog), build_id)
    for needle in ("modules without symbols", prog, "--debug-dir", ".build-id"):
        if needle not in out0.stdout:
            t.fail(f"the text summary does not mention {needle!r}:\n{out0.stdout}")
    if f"{prog} has no debug info and no symbol table" not in out0.stderr:
        t.fail("the info log does not say the program has no symbol table:\n" + out0.stderr[-3000:])
    print("ok the summaries list the stripped program and say how to add its symbols")
    _, prof_full, _, _, _ = run_traced(a, *opts)
    want = stacks(prof_full, "--debug-dir", debug_dir)
    got = stacks(prof0, "--debug-dir", debug_dir)
    if got == f0:
        t.fail("report --debug-dir named nothing")
    expect_eq("stacks named by report --debug-dir vs the unstripped program's", got, want)


def check_clone(a):
    srv, prof, s, _, _ = run_traced(a)
    counts = fixture_counts(srv.output())
    # Frames carry DWARF's names, as gdb's bt shows them: Item's impl is "fx_alloc_rust::workload::{impl#N}::clone".
    # Every clone called straight from a clone_site_* function is Item's (String's is called from Item's).
    got = per_caller(folded(a, prof, "calls"), lambda f: f.endswith("::clone"))
    want = {}
    for site in "abc":
        callers = [c for c in got if c.endswith(f"clone_site_{site}")]
        want_count = counts[f"clone_{site}"]
        expect_eq(f"Item::clone calls from clone_site_{site}", sum(got[c] for c in callers), want_count)
        want[site] = want_count


def agent_rss_kb(pid, key="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def check_stall(a):
    """A collector that stops reading for 2 s (SIGSTOP, then SIGCONT) while the agent streams: the agent holds
    the program instead of buffering without bound (its RSS stays under 8 MB), and once the collector reads again
    no event is lost: the counts still equal valgrind's, and the summary says how long the program was held.
    The events carry raw stack windows (--agent-unwind no): compact records, some 14 bytes an event, would not
    fill the agent's buffers and the socket's in 2 s of this workload."""
    inprocess = getattr(a, "capture", None) == "inprocess"
    srv = t.Server(a.server, a.agent, a.argv, extra=["--log-level", "info"] if inprocess else [])
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    # In-process, the recorder's ring (8 MiB) fills behind the stalled stream and its writers wait.
    mode = ["--capture", "inprocess"] if inprocess else ["--agent-unwind", "no"]
    proc = subprocess.Popen([a.collector, "--connect", f"127.0.0.1:{srv.port}", "--no-progress", "--module",
                             a.module, *mode, "-o", prof, "--summary-json", summ],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # connected, breakpoints placed, events streaming
    proc.send_signal(signal.SIGSTOP)
    with open(f"/proc/{srv.proc.pid}/maps") as f:
        asan = "libasan" in f.read()  # its shadow memory makes RSS meaningless
    rss = 0
    for _ in range(20):
        time.sleep(0.1)
        # In-process, the agent shares the recorder's ring and the table arena with the program: its own
        # memory is what is not shared.
        rss = max(rss, agent_rss_kb(srv.proc.pid, "RssAnon:" if inprocess else "VmRSS:"))
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=240)
    if proc.returncode != 0:
        t.fail(f"collector exited {proc.returncode}:\n{err[-3000:]}")
    srv.wait()
    s = json.load(open(summ))
    print(f"agent RSS while the collector was stopped: {rss} KiB; program held {s['capture']['held_ms']:.0f} ms "
          f"at {s['capture']['held_hits']} hits")
    if asan:
        print("note: sanitizer build, RSS not compared")
    elif rss >= 8 * 1024:
        t.fail(f"the agent's RSS reached {rss} KiB while the collector did not read")
    if inprocess:
        m = re.search(r"recorder: (\d+) records, (\d+) waited for room", srv.output())
        if s["capture"]["mode"] != "inprocess" or not m or int(m.group(2)) == 0:
            t.fail(f"the recorder's writers never waited while the collector did not read: {s['capture']}\n"
                   + srv.output()[-2000:])
        print(f"ok {m.group(2)} of {m.group(1)} records waited for room in the ring")
    elif s["capture"]["mode"] != "agent" or s["capture"]["held_ms"] <= 0:
        t.fail(f"the program was not held while the collector did not read: {s['capture']}")
    va, vf, vb = t.valgrind_heap_totals(a.argv)
    expect_eq("allocs vs valgrind", s["memory"]["allocs"], va)
    expect_eq("frees vs valgrind", s["memory"]["frees"], vf)
    expect_eq("bytes allocated vs valgrind", s["memory"]["bytes_allocated"], vb)


def check_mixed(a):
    """--module memory,mutex --capture inprocess: the memory module's calls come from the recorder, mutex's from the
    agent's capture breakpoints, in one run; the memory counts are valgrind's and the mutex module sees every
    contended acquisition; the summary names each module's engine (JSON and text)."""
    srv, prof, s, out, _ = run_traced(a, "--summary", "-")
    expect_eq("engines", s["capture"]["engines"], {"memory": "inprocess", "mutex": "agent"})
    if "captured by: memory: inprocess, mutex: agent" not in out.stdout:
        t.fail("the text summary does not say which engine captured which module:\n" + out.stdout[:2000])
    va, vf, vb = t.valgrind_heap_totals(a.argv)
    expect_eq("allocs vs valgrind", s["memory"]["allocs"], va)
    expect_eq("frees vs valgrind", s["memory"]["frees"], vf)
    expect_eq("bytes allocated vs valgrind", s["memory"]["bytes_allocated"], vb)
    rounds = fixture_counts(srv.output())["rounds"]
    contended = folded(a, prof, "contended_locks")
    at_waiter = sum(v for st, v in contended.items() if any("waiter_lock" in f for f in st))
    if at_waiter < rounds:
        t.fail(f"only {at_waiter} contended acquisitions at waiter_lock, expected at least {rounds}")
    print(f"ok {at_waiter} contended acquisitions at waiter_lock (rounds={rounds})")


def ring_records(pid):
    """The recorder's committed-record counter in pid's ring (its shared mapping of the agent's memfd), or None."""
    try:
        maps = open(f"/proc/{pid}/maps").read()
        m = re.search(r"^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s+/memfd:rsprof-ring", maps, re.M)
        if not m:
            return None
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.seek(int(m.group(1), 16) + 384)  # struct rring_shared: records (common/recorder-ring.h)
            return int.from_bytes(f.read(8), "little")
    except OSError:
        return None


def attach_run(a, *collector_args):
    """Starts the program, lets it run a moment, attaches the agent to it and traces with collector_args."""
    prog = subprocess.Popen(a.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    srv = t.Server("agent", a.agent, [], extra=["--attach", str(prog.pid), "--log-level", "info"])
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    out = t.collector(a.collector, srv.port, "--module", a.module, "--capture", "inprocess", "-o", prof,
                      "--summary-json", summ, *collector_args)
    srv.wait()
    return prog, srv, json.load(open(summ)), out


def check_attach(a):
    """The agent injects the recorder into a running program (dlopen through ptrace), traces it 2 s and detaches:
    events were recorded in-process, the program goes on and ends with its own counts right, and the recorder
    no longer records (its ring's record counter stands still)."""
    prog, srv, s, out = attach_run(a, "--duration", "2s")
    if "recorder loaded into process" not in srv.output():
        t.fail("the agent did not load the recorder:\n" + srv.output()[-2000:])
    expect_eq("capture mode", s["capture"]["mode"], "inprocess")
    if s["memory"]["allocs"] < 1000:
        t.fail(f"only {s['memory']['allocs']} allocations recorded in 2 s of an allocating program")
    print(f"ok {s['memory']['allocs']} allocations recorded in-process in 2 s")
    first = ring_records(prog.pid)
    time.sleep(0.5)
    second = ring_records(prog.pid)
    if first is None:
        print("note: the ring's counter cannot be read (no access to /proc/PID/mem)")
    elif first != second:
        t.fail(f"the recorder still records after the detach ({first} then {second} records)")
    else:
        print(f"ok the recorder records nothing after the detach ({first} records)")
    stdout, stderr = prog.communicate(timeout=240)
    expect_eq("program exit code after the detach", prog.returncode, 0)
    counts = fixture_counts(stdout)
    n = int(a.argv[1])
    expect_eq("the program's own allocation count", counts.get("allocs"), 10 * n)
    expect_eq("the program's own free count", counts.get("frees"), 10 * n)


def check_heap_attach(a):
    """Attached before its work: the fixture waits on FX_GATE_FD at the start of main, the agent injects the
    recorder meanwhile, then the test opens the gate. The reference is valgrind cut at the gate: its totals for
    the whole run minus its totals for a run that exits at the gate (FX_GATE_FD=exit). What happens before the
    gate (a library's constructor, C++ static initialization, the Rust runtime's start-up) cannot be seen by an
    attached tracer, by definition; so the attached run must count exactly the allocations after the gate, and
    its frees plus its frees of blocks it never saw allocated (those from before the gate) exactly valgrind's
    frees after the gate. --expect adds the fixture's own checks (threads, leaks, the Rust workload's counts)."""
    va, vf, vb = t.valgrind_heap_totals(a.argv)
    pa, pf, pb = t.valgrind_heap_totals(a.argv, env={**os.environ, "FX_GATE_FD": "exit"})
    print(f"valgrind: {va} allocs, {vf} frees, {vb} bytes; before the gate {pa}, {pf}, {pb}")
    gate_r, gate_w = os.pipe()
    prog = subprocess.Popen(a.argv, pass_fds=(gate_r,), stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "FX_GATE_FD": str(gate_r)})
    os.close(gate_r)
    time.sleep(0.2)
    srv = t.Server("agent", a.agent, [], extra=["--attach", str(prog.pid), "--log-level", "info"])
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    col = subprocess.Popen([a.collector, "--connect", f"127.0.0.1:{srv.port}", "--no-progress", "--module",
                            a.module, "--capture", "inprocess", "-o", prof, "--summary-json", summ],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while "recorder loaded into process" not in srv.output() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the collector has placed its (virtual) breakpoints and resumed
    os.write(gate_w, b"\n")
    os.close(gate_w)
    out, err = col.communicate(timeout=240)
    if col.returncode != 0:
        t.fail(f"collector exited {col.returncode}:\n{err[-3000:]}\nagent:\n{srv.output()[-3000:]}")
    srv.wait()
    stdout, _ = prog.communicate(timeout=60)
    expect_eq("program exit code", prog.returncode, 0)
    s = json.load(open(summ))
    mem = s["memory"]
    expect_eq("capture mode", s["capture"]["mode"], "inprocess")
    expect_eq("allocs vs valgrind after the gate (attached)", mem["allocs"], va - pa)
    expect_eq("bytes allocated vs valgrind after the gate (attached)", mem["bytes_allocated"], vb - pb)
    expect_eq("frees, seen allocated or not, vs valgrind after the gate (attached)",
              mem["frees"] + mem["unknown_frees"], vf - pf)
    if pa == 0:
        expect_eq("frees of blocks never seen allocated", mem["unknown_frees"], 0)
    if a.expect == "threads":
        expect_thread_counts(a, prof, stdout)
    elif a.expect == "leak":
        expect_leaks(a, prof, s)
    elif a.expect == "workload":
        expect_workload_counts(a, prof, fixture_counts(stdout))


def check_static(a):
    """A statically linked program under --capture inprocess: the agent refuses to load its recorder, the collector
    says so clearly and counts with capture breakpoints: exactly the program's own counts, once the static libc's
    own start-up blocks (a run with no work) are left out (valgrind cannot see a static program's malloc)."""
    def traced(argv):
        srv = t.Server(a.server, a.agent, argv)
        summ = os.path.join(srv.tmp, "s.json")
        out = t.collector(a.collector, srv.port, "--module", a.module, "--capture", "inprocess", "-o",
                          os.path.join(srv.tmp, "p.drcctprof"), "--summary-json", summ)
        srv.wait()
        return srv, out, json.load(open(summ))
    srv, out, s = traced(a.argv)
    if "cannot load its recorder into this program (statically linked" not in out.stderr:
        t.fail("no clear message about the static program:\n" + out.stderr[-2000:])
    print("ok the collector says why the recorder was not loaded")
    if "statically linked" not in srv.output():
        t.fail("the agent did not say the program is statically linked:\n" + srv.output()[-2000:])
    expect_eq("engines", s["capture"]["engines"], {"memory": "agent"})
    counts = fixture_counts(srv.output())
    _, _, base = traced([a.argv[0], "0"])
    expect_eq("allocs vs the program's own", s["memory"]["allocs"] - base["memory"]["allocs"], counts["allocs"])
    expect_eq("frees vs the program's own", s["memory"]["frees"] - base["memory"]["frees"], counts["frees"])


def check_sigint(a):
    """SIGINT during a run still writes a valid profile and summary, exits 1 saying so, and leaves the program
    running."""
    srv = t.Server(a.server, a.agent, a.argv)
    prof = os.path.join(srv.tmp, "p.drcctprof")
    summ = os.path.join(srv.tmp, "s.json")
    proc = subprocess.Popen([a.collector, "--connect", f"127.0.0.1:{srv.port}", "--no-progress", "--module",
                             a.module, "-o", prof, "--summary-json", summ], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    expect_eq("collector exit status after SIGINT", proc.returncode, 1)
    if not re.search(r"interrupted by SIGINT; wrote the [1-9]\d* events collected so far", err):
        t.fail(f"no message saying the run was interrupted:\n{err}")
    s = json.load(open(summ))
    if s["program"]["ended"]:
        t.fail("the program ended before SIGINT: make the run longer")
    if s["memory"]["allocs"] <= 0:
        t.fail("nothing was collected before SIGINT")
    if not folded(a, prof, "allocations"):
        t.fail("the profile written after SIGINT has no samples")
    # The agent waits for the program it launched, after the collector detached, and exits with its status.
    status = srv.wait(timeout=120)
    expect_eq("program exit status after detach (it kept running to its end)", status, 0)
    counts = fixture_counts(srv.output())
    expect_eq("rounds the program completed after detach", counts.get("allocs", 0) // 10, int(a.argv[-1]))
    print(f"ok {s['memory']['allocs']} allocations collected before SIGINT")


def check_preload(a):
    """An unmodified C program under LD_PRELOAD=librsprof_preload.so is traced by memtrace."""
    # The agent puts the shim into the program's environment only (not its own).
    srv, prof, s, _, _ = run_traced(a, agent_args=["--env", f"LD_PRELOAD={a.preload}"])
    counts = fixture_counts(srv.output())
    expect_eq("allocs vs the program's own count", s["memory"]["allocs"], counts["allocs"])
    expect_eq("frees vs the program's own count", s["memory"]["frees"], counts["frees"])
    expect_eq("bytes vs the program's own count", s["memory"]["bytes_allocated"], counts["bytes"])


def normalized_folded(a, prof, metric):
    """folded() with thread and process ids taken out of the root frames, which differ between runs."""
    out = {}
    for stack, value in folded(a, prof, metric).items():
        key = tuple(re.sub(r"\d+", "N", f) if re.match(r"^(THREAD|PROCESS|process|thread)\b", f) else f
                    for f in stack)
        out[key] = out.get(key, 0) + value
    return out


# Summary entries that describe how a run went, not what the program did.
RUN_KEYS = {"capture", "duration_ms", "breakpoint_stops", "quiet_stops", "stack_window", "stack_window_refills",
            "program", "truncated_window"}


def compare_modes(a, runs):
    """The profile (every metric's stacks) and the summary are the same whichever side captured the events."""
    (_, pa, sa), (_, pr, sr) = runs["agent"], runs["roundtrip"]
    heap = ["allocations", "bytes_allocated", "frees", "bytes_freed", "leaked_bytes", "leaked_blocks"]
    names = {"memory": heap, "memtrace": heap, "calls": ["calls"], "clone": ["calls"]}[a.module]
    for m in names:
        fa, fr = normalized_folded(a, pa, m), normalized_folded(a, pr, m)
        if fa != fr:
            only = sorted(set(fa.items()) ^ set(fr.items()))[:6]
            t.fail(f"metric {m}: the profiles differ between --capture agent and roundtrip, e.g. {only}")
        print(f"ok metric {m}: {len(fa)} stacks, {sum(fa.values())} in all, the same in both modes")
    # When the peak came is timing; with threads, so is its height (the threads' interleaving).
    timing = {"peak_ms"} | ({"peak_bytes"} if a.threads_peak else set())

    def what(v):
        return {x: y for x, y in v.items() if x not in timing} if isinstance(v, dict) else v

    for k in sorted(set(sa) | set(sr)):
        if k in RUN_KEYS:
            continue
        if what(sa.get(k)) != what(sr.get(k)):
            t.fail(f"summary {k}: {sa.get(k)} with --capture agent, {sr.get(k)} with roundtrip")
    expect_eq("exit code, agent vs roundtrip", sa["program"]["exit_code"], sr["program"]["exit_code"])
    print("ok the summaries agree in both modes (%d entries)" % len([k for k in sa if k not in RUN_KEYS]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--collector", required=True)
    ap.add_argument("--agent")
    ap.add_argument("--server", default="agent", choices=["agent", "gdbserver"])
    ap.add_argument("--module", default="memory")
    ap.add_argument("--preload")
    ap.add_argument("--tls", action="store_true", help="the agent and the collector talk over mutual TLS")
    ap.add_argument("--collector-option", action="append", default=[],
                    help="passed on to every collector run (repeatable), e.g. --collector-option=--poll-us=0")
    ap.add_argument("--round-trips", action="store_true",
                    help="heap with fx-alloc-c, mutex with fx-mutex-c, through the agent: at most one stop per event "
                    "waits for the collector")
    ap.add_argument("--stop-cost", action="store_true",
                    help="heap, Rust over libc's allocator: also bound the breakpoint stops per allocator call")
    ap.add_argument("--bind-now", action="store_true",
                    help="calls-ifunc on a program linked with -z now: the program's own count is the reference")
    ap.add_argument("--capture", choices=["agent", "roundtrip", "inprocess"], help="passed on to the collector")
    ap.add_argument("--both-modes", action="store_true",
                    help="run the check with --capture agent, then roundtrip, and compare the first runs' profiles "
                    "and summaries (unless --no-compare: the mutex module's contention depends on timing)")
    ap.add_argument("--no-compare", action="store_true")
    ap.add_argument("--threads-peak", action="store_true", help="--both-modes: the peak depends on the threads' timing")
    ap.add_argument("--expect", choices=["threads", "leak", "workload"],
                    help="heap-attach: also the fixture's own checks (per-thread counts, leaks, the Rust workload)")
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()
    t.require_ptrace()
    if not a.argv[0] or not os.path.exists(a.argv[0]):
        t.skip(f"fixture {a.argv[0] or '(Rust)'} was not built (is cargo installed?)")
    check = {"heap": check_heap, "heap-own-allocator": check_heap_own_allocator, "leak": check_leak, "threads": check_threads, "mutex": check_mutex,
             "thresholds": check_thresholds, "crash": check_crash, "calls": check_calls,
             "calls-ifunc": check_calls_ifunc,
             "calls-ifunc-dlopen": check_calls_ifunc_dlopen, "stripped": check_stripped, "clone": check_clone, "sigint": check_sigint, "preload": check_preload,
             "stall": check_stall, "mixed": check_mixed, "attach": check_attach,
             "heap-attach": check_heap_attach, "static": check_static,
             "heap-stub-markers": check_heap_stub_markers}[a.check]
    if not a.both_modes:
        check(a)
        return
    first = {}
    for mode in ("agent", "roundtrip"):
        print(f"--- --capture {mode}")
        start = len(_runs)
        check(argparse.Namespace(**{**vars(a), "capture": mode}))
        first[mode] = _runs[start]
    if not a.no_compare:
        compare_modes(a, first)


if __name__ == "__main__":
    main()
