#!/usr/bin/env python3
"""Proves the layering check can fail: on a copy of the tree it must name the file and line of an include
that goes up, one that goes sideways, an include cycle, a system header outside its folder, and a file
without a header comment."""
import os
import shutil
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
checker = os.path.join(here, "check-layers.py")


def run(tree):
    p = subprocess.run([sys.executable, checker, "--root", tree], capture_output=True, text=True)
    return p.returncode, p.stdout


def add_line(path, line):
    """Inserts line after the file's first #include; returns its line number."""
    with open(path) as f:
        lines = f.readlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("#include")) + 1
    lines.insert(at, line + "\n")
    with open(path, "w") as f:
        f.writelines(lines)
    return at + 1


def first_c(tree, folder):
    return sorted(n for n in os.listdir(os.path.join(tree, folder)) if n.endswith(".c"))[0]


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tree = os.path.join(tmp, "tree")
        for side in ("agent", "collector", "common"):
            shutil.copytree(os.path.join(root, side), os.path.join(tree, side))
        rc, out = run(tree)
        if rc != 0:
            print("the unmodified tree must pass:\n" + out)
            return 1

        cases = []
        up = f"collector/rsp/{first_c(tree, 'collector/rsp')}"
        cases.append((up, '#include "trace.h"', "goes up"))
        side = f"collector/unwind/{first_c(tree, 'collector/unwind')}"
        cases.append((side, '#include "symbolize.h"', "goes sideways"))
        cases.append(("common/hex.c", '#include "rsp-client.h"', "is no header of common/"))
        cases.append(("common/buf.c", "#include <uv.h>", "belongs to"))
        for path, line, expect in cases:
            work = os.path.join(tmp, "case")
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(tree, work)
            no = add_line(os.path.join(work, path), line)
            rc, out = run(work)
            want = f"{path}:{no}:"
            if rc != 1 or want not in out or expect not in out:
                print(f"FAIL: {line} in {path}: exit {rc}, expected a line starting {want} saying '{expect}':\n{out}")
                failures += 1
            else:
                print(f"ok: {line} in {path} -> " + next(l for l in out.splitlines() if l.startswith(want)))

        # A cycle inside one folder: two headers that include each other.
        work = os.path.join(tmp, "cycle")
        shutil.copytree(tree, work)
        for a, b in (("loop-a", "loop-b"), ("loop-b", "loop-a")):
            with open(os.path.join(work, "collector/trace", a + ".h"), "w") as f:
                f.write(f'#include "{b}.h"\n')
        rc, out = run(work)
        if rc != 1 or "include cycle" not in out or "loop-a" not in out:
            print(f"FAIL: a two-header cycle was not reported (exit {rc}):\n{out}")
            failures += 1
        else:
            print("ok: cycle -> " + next(l for l in out.splitlines() if "include cycle" in l))
        # A file that does not say what it is for.
        work = os.path.join(tmp, "nohead")
        shutil.copytree(tree, work)
        with open(os.path.join(work, "collector/trace/nohead.c"), "w") as f:
            f.write("int nohead;\n")
        rc, out = run(work)
        if rc != 1 or "collector/trace/nohead.c:1: does not open with a comment" not in out:
            print(f"FAIL: a file without a header comment was not reported (exit {rc}):\n{out}")
            failures += 1
        else:
            print("ok: no header -> " + next(l for l in out.splitlines() if "nohead" in l))
    print(f"{6 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
