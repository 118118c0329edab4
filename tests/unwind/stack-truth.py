#!/usr/bin/env python3
"""Stack-truth test: records gdb's view of COUNT stops of a fixture into a temporary folder, then runs
the checker, which unwinds and symbolizes the same snapshots and compares frame by frame.
Usage: stack-truth.py [--qemu-aarch64] CHECKER BREAK_SYMBOL BINARY [ARGS...]; exits 77 when ptrace (or,
for --qemu-aarch64, qemu-aarch64 or gdb-multiarch) is unavailable."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    argv = sys.argv[1:]
    extra = []
    gdb = 'gdb'
    if argv and argv[0] == '--qemu-aarch64':
        argv = argv[1:]
        extra = ['--qemu-aarch64', '--gdb', 'gdb-multiarch']
        gdb = 'gdb-multiarch'
        if shutil.which('qemu-aarch64') is None:
            print('skipped: qemu-aarch64 is not installed', file=sys.stderr)
            return 77
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    checker, brk, binary = argv[0:3]
    if not os.path.exists(binary):
        print('skipped: fixture %s was not built' % binary, file=sys.stderr)
        return 77
    if shutil.which(gdb) is None:
        print('skipped: %s is not installed' % gdb, file=sys.stderr)
        return 77
    tmp = tempfile.mkdtemp(prefix='rsprof-unwind-')
    ok = False
    try:
        r = subprocess.run([sys.executable, os.path.join(HERE, 'record-snapshots.py'), '--break', brk,
                            '--count', '50', '--out', tmp] + extra + [binary] + argv[3:])
        if r.returncode != 0:
            return r.returncode
        with open(os.path.join(tmp, 'count')) as f:
            count = int(f.read())
        if count < 50:
            print('gdb recorded only %d stops (see %s/gdb.log)' % (count, tmp), file=sys.stderr)
            return 1
        r = subprocess.run([checker, tmp])
        ok = r.returncode == 0
        return r.returncode
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print('snapshots kept in %s' % tmp, file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())
