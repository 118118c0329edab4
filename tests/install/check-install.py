#!/usr/bin/env python3
"""cmake --install with DESTDIR into a temporary directory: the programs, the preload library, the C stub and
the documentation are where GNUInstallDirs puts them, the installed programs run, and the documentation names
the preload library's installed path."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("cmake", "build-dir", "source-dir", "bindir", "libdir", "includedir", "docdir", "version"):
        ap.add_argument("--" + opt, required=True)
    a = ap.parse_args()
    dest = tempfile.mkdtemp(prefix="rsprof-install-")
    try:
        prefix = "/usr/local"  # the default prefix; the layout under it is what GNUInstallDirs chose
        env = dict(os.environ, DESTDIR=dest)
        out = subprocess.run([a.cmake, "--install", a.build_dir, "--prefix", prefix], env=env, capture_output=True,
                             text=True, timeout=100)
        if out.returncode != 0:
            fail(f"cmake --install failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        root = dest + prefix
        want = [f"{a.bindir}/rsprof-agent", f"{a.bindir}/rsprof-collector", f"{a.libdir}/librsprof_preload.so",
                f"{a.libdir}/librsprof_stub.a", f"{a.includedir}/rsprof_stub.h", f"{a.docdir}/README.md",
                f"{a.docdir}/agent.md", f"{a.docdir}/collector.md", f"{a.docdir}/protocol.md",
                f"{a.docdir}/examples/rsprof-agent.service"]
        for rel in want:
            if not os.path.isfile(os.path.join(root, rel)):
                fail(f"{prefix}/{rel} was not installed; installed: "
                     + " ".join(sorted(os.path.relpath(os.path.join(d, f), root)
                                       for d, _, fs in os.walk(root) for f in fs)))
            print(f"ok {prefix}/{rel}")
        for prog in ("rsprof-collector", "rsprof-agent"):
            path = os.path.join(root, a.bindir, prog)
            if not os.access(path, os.X_OK):
                fail(f"{path} is not executable")
            run = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
            if run.returncode != 0 or run.stdout.strip() != f"{prog} {a.version}":
                fail(f"installed {prog} --version: status {run.returncode}, output {run.stdout!r} {run.stderr!r}")
            print(f"ok installed {prog} --version: {run.stdout.strip()}")
        # The preload library must be loadable where it was installed: a program runs under it.
        shim = os.path.join(root, a.libdir, "librsprof_preload.so")
        run = subprocess.run(["/bin/true"], env=dict(os.environ, LD_PRELOAD=shim), capture_output=True, text=True)
        if run.returncode != 0 or "cannot be preloaded" in run.stderr:
            fail(f"a program does not run under the installed {shim}: {run.stderr}")
        print("ok a program runs under the installed preload library")
        # What the documentation tells people to preload must be the installed name.
        docs = "".join(open(os.path.join(a.source_dir, p)).read() for p in ("README.md", "docs/agent.md",
                                                                              "docs/collector.md"))
        installed = f"{prefix}/{a.libdir}/librsprof_preload.so"
        for path in set(re.findall(r"LD_PRELOAD=(/\S*librsprof_preload\.so)", docs)):
            if path != installed:
                fail(f"the documentation preloads {path}, which nothing installs (installed: {installed})")
        if installed not in docs:
            fail(f"the documentation does not name the installed {installed}")
        print("ok the documentation names the installed preload library")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()
