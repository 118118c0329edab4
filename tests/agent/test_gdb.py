"""Stock gdb against rsprof-agent: backtraces equal gdb's own at the same stop, registers, memory,
shared libraries, next/step, exit status, threads and extended mode."""
import os
import re
import sys

from agenttest import Agent, check, fail, gdb_batch, normalize_bt, require_gdb, require_ptrace, spawn

FX_GDB = os.environ["FX_GDB"]
FX_THREADS = os.environ["FX_THREADS"]


def interop():
    stops = ["agentfx_middle", "agentfx_lib_twice"]
    cmds = ["break " + s for s in stops] + ["continue", "bt", "continue", "bt"]
    native = gdb_batch(FX_GDB, ["break " + s for s in stops] + ["run", "bt", "continue", "bt", "kill"])
    agent = Agent(["--", FX_GDB])
    remote = gdb_batch(FX_GDB, ["target remote 127.0.0.1:%d" % agent.port] + cmds +
                       ["p $pc", "info registers", "x/s agentfx_greeting", "info sharedlibrary",
                        "next", "step", "delete", "continue"])
    rc = agent.wait()
    nbt, rbt = normalize_bt(native), normalize_bt(remote)
    print("native bt:\n  " + "\n  ".join(nbt))
    print("agent bt:\n  " + "\n  ".join(rbt))
    check(len(nbt) >= 6, "gdb's own backtraces were produced")
    check(nbt == rbt, "backtraces through the agent equal gdb's native ones (program and shared library)")
    check(re.search(r"\$1 = \(void \(\*\)\(\)\) 0x[0-9a-f]+ <agentfx_lib_twice\+\d+>", remote) is not None,
          "p $pc names the function the breakpoint is in")
    check(re.search(r"^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <agentfx_lib_twice", remote, re.M) is not None and
          re.search(r"^rsp\s+0x[0-9a-f]+", remote, re.M) is not None, "info registers shows rip and rsp")
    check('"hello from the agent fixture"' in remote, "x/s reads a string from the target")
    check(re.search(r"libc\.so\.6", remote) is not None and "libagentfx-lib.so" in remote,
          "info sharedlibrary lists libc and the fixture's library")
    check(re.search(r"^7\s+return doubled;", remote, re.M) is not None, "next moves to the following line")
    check(re.search(r"^8\s+}", remote, re.M) is not None, "step moves on again")
    check("exited with code 07" in remote, "gdb reports the program's exit status 7")
    check(rc == 7, "the agent exits with the program's status (got %s)" % rc)
    check("total=18 status=7" in agent.stdout, "the program ran to completion")


def threads():
    agent = Agent(["--", FX_THREADS])
    out = gdb_batch(FX_THREADS, ["target remote 127.0.0.1:%d" % agent.port, "break agentfx_tick",
                                  "continue", "info threads", "delete", "continue"])
    rc = agent.wait()
    lines = [l for l in out.splitlines() if re.match(r"^[* ] +\d+ +Thread ", l)]
    print("\n".join(lines))
    check(len(lines) == 5, "info threads lists main and the 4 workers (%d listed)" % len(lines))
    check("ticks=4000" in agent.stdout and rc == 0, "the program finished with every tick counted")


def attach():
    import subprocess, tempfile, time
    fx = os.environ["FX_ATTACH"]
    ready = os.path.join(tempfile.mkdtemp(prefix="rsprof-agent-gdb."), "ready")
    steps = 150
    proc = spawn([fx, ready, str(steps)], stdout=subprocess.PIPE)
    while not os.path.exists(ready):
        time.sleep(0.01)
    agent = Agent(["--attach", str(proc.pid)])
    out = gdb_batch(fx, ["target remote 127.0.0.1:%d" % agent.port, "break agentfx_step", "continue",
                         "bt", "delete", "detach"])
    rc = agent.wait()
    pout, _ = proc.communicate(timeout=30)
    print(out[-600:])
    check(re.search(r"^#0\s+agentfx_step \(i=\d+\)", out, re.M) is not None and
          re.search(r"^#1\s+0x[0-9a-f]+ in main ", out, re.M) is not None, "gdb stops in agentfx_step, called by main")
    check("Detaching from program" in out or "detached" in out.lower(), "gdb detached")
    expect = sum(i * 3 + 1 for i in range(steps))
    check(pout.decode().strip() == "attach fixture done: sum=%d" % expect and proc.returncode == 3,
          "the program finished with its normal output and status")
    check(rc == 0, "the agent exited after the detach")


def signals():
    fx = os.environ["FX_SIGNAL"]
    # Reported to gdb and passed on when continuing (gdb's default for SIGUSR1)...
    agent = Agent(["--", fx])
    out = gdb_batch(fx, ["target remote 127.0.0.1:%d" % agent.port] + ["continue"] * 4)
    rc = agent.wait()
    check(out.count("received signal SIGUSR1") == 3, "each SIGUSR1 is reported to gdb")
    check("exited with code 03" in out and rc == 3, "and delivered to the program when continuing")
    # ...or passed straight through without a stop (QPassSignals).
    agent = Agent(["--", fx])
    out = gdb_batch(fx, ["handle SIGUSR1 nostop noprint pass", "target remote 127.0.0.1:%d" % agent.port,
                         "continue"])
    rc = agent.wait()
    check("received signal" not in out and "exited with code 03" in out and rc == 3,
          "with 'handle nostop pass' the signals reach the program without stops")


def extended():
    agent = Agent(["--multi", "--once"])
    out = gdb_batch(FX_GDB, ["target extended-remote 127.0.0.1:%d" % agent.port,
                             "set remote exec-file " + FX_GDB, "run 11", "run 12"])
    rc = agent.wait()
    print(out[-800:])
    check("exited with code 013" in out, "first run reported exit status 11")
    check("exited with code 014" in out, "second run reported exit status 12")
    check("status=11" in agent.stdout and "status=12" in agent.stdout, "both runs got their arguments")
    check(rc == 0, "the agent left after the client with --once")


if __name__ == "__main__":
    require_ptrace()
    require_gdb()
    {"interop": interop, "threads": threads, "extended": extended, "attach": attach,
     "signals": signals}[sys.argv[1]]()
