#!/usr/bin/env python3
"""Records stack snapshots with gdb for the unwinder's stack-truth test and benchmark.

Runs BINARY under gdb (batch mode, no Python, no separate debug files), stops COUNT times at a
breakpoint and records at each stop the registers, the stack bytes from $sp (up to 16 KiB, never
past the environment block at the top of the main thread's stack) and gdb's own `bt`. Writes to OUT:
  modules.txt       "START PATH" per mapped ELF file (start of the mapping at file offset 0)
  stop-N.regs       "NAME 0xVALUE" lines from `info registers`
  stop-N.stack      raw stack bytes; stop-N.sp holds their start address
  stop-N.bt         gdb's frames: "FUNCTION<TAB>FILE<TAB>LINE" ("??" / "-" / 0 when absent)
Exit status 77 when ptrace is not permitted.
With --qemu-aarch64 the binary (static, non-PIE) runs under qemu-aarch64's gdb stub and gdb-multiarch
attaches to it through a Unix socket in OUT.
"""
import argparse
import struct
import os
import re
import subprocess
import sys
import time

FRAME_RE = re.compile(r'^#(\d+)\s+(?:0x[0-9a-f]+ in )?(.*)$')
TAIL_RE = re.compile(r'^ \(.*\)(?: at (.+):(\d+)| from (\S+))?\s*$')


def parse_frame(line):
    """Splits a `bt` line into (function, file, line): the name ends at the first ' (' outside <>."""
    m = FRAME_RE.match(line)
    if not m:
        return None
    rest = m.group(2)
    depth = 0
    for i, c in enumerate(rest):
        if c == '<':
            depth += 1
        elif c == '>' and depth > 0 and rest[i - 1] != '-':
            depth -= 1
        elif c == '(' and depth == 0 and i > 0 and rest[i - 1] == ' ':
            t = TAIL_RE.match(rest[i - 1:])
            if t:
                return rest[:i - 1], t.group(1), t.group(2)
    return None


def gdb_script(a, out, sock=None):
    start = ['break %s' % a.break_at, 'run %s > /dev/null' % ' '.join(a.args),
             'echo ===MAPS\\n', 'info proc mappings', 'echo ===ENDMAPS\\n']
    if sock:
        start = ['target remote %s' % sock, 'break %s' % a.break_at, 'continue']
    lines = [
        'set pagination off', 'set width 0', 'set height 0', 'set confirm off',
        'set print frame-arguments none', 'set print frame-info auto',
        'set startup-with-shell off',
        'handle SIGUSR1 nostop noprint pass',
    ] + start + [
        'set language c',
        'set $top = (unsigned long)*(unsigned long *)&environ',
        'set $i = 0',
        'while $i < %d' % a.count,
        '  echo ===STOP\\n',
        '  info registers general',
        '  echo ===BT\\n',
        '  set language auto',
        '  bt',
        '  set language c',
        '  echo ===ENDBT\\n',
        '  set $len = $top - (unsigned long)$sp',
        '  if $len > 16384',
        '    set $len = 16384',
        '  end',
        '  printf "===SP 0x%lx\\n", (unsigned long)$sp',
        '  eval "dump binary memory %s/stop-%%d.stack %%lu %%lu", $i, (unsigned long)$sp, (unsigned long)$sp + $len'
        % out.replace('%', '%%'),
        '  set $i = $i + 1',
        '  continue',
        'end',
        'kill',
    ]
    return '\n'.join(lines) + '\n'


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--gdb', default='gdb')
    p.add_argument('--break', dest='break_at', required=True)
    p.add_argument('--count', type=int, default=50)
    p.add_argument('--out', required=True)
    p.add_argument('--qemu-aarch64', action='store_true')
    p.add_argument('binary')
    p.add_argument('args', nargs='*')
    a = p.parse_args()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    script = os.path.join(out, 'record.gdb')
    sock = os.path.join(out, 'gdb.sock') if a.qemu_aarch64 else None
    qemu = None
    if sock:
        qemu = subprocess.Popen(['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu', '-g', sock, a.binary] + a.args,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
    with open(script, 'w') as f:
        f.write(gdb_script(a, out, sock))
    cmd = [a.gdb, '-nx', '-batch', '-iex', 'set debug-file-directory /nonexistent',
           '-iex', 'set auto-load safe-path /', '-x', script, '--args', a.binary] + a.args
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    finally:
        if qemu:
            qemu.kill()
            qemu.wait()
    log = r.stdout
    with open(os.path.join(out, 'gdb.log'), 'w') as f:
        f.write(log)
    if 'ptrace: Operation not permitted' in log or "Couldn't get registers" in log:
        print('skipped: ptrace is not permitted here', file=sys.stderr)
        return 77
    parse_log(log, out, static_binary=a.binary if sock else None)
    return 0


def lowest_load(path):
    """The lowest PT_LOAD address of a 64-bit little-endian ELF file (where a static binary sits)."""
    with open(path, 'rb') as f:
        data = f.read(65536)
    phoff, = struct.unpack_from('<Q', data, 32)
    phentsize, phnum = struct.unpack_from('<HH', data, 54)
    lo = None
    for i in range(phnum):
        ptype, = struct.unpack_from('<I', data, phoff + i * phentsize)
        vaddr, = struct.unpack_from('<Q', data, phoff + i * phentsize + 16)
        if ptype == 1 and (lo is None or vaddr < lo):
            lo = vaddr
    return lo


def parse_log(log, out, static_binary=None):
    lines = log.splitlines()
    i = 0
    stop = -1
    modules = {}
    if static_binary:
        modules[os.path.abspath(static_binary)] = lowest_load(static_binary) & ~0xfff
    while i < len(lines):
        line = lines[i]
        if line == '===MAPS':
            i += 1
            while i < len(lines) and lines[i] != '===ENDMAPS':
                parts = lines[i].split()
                # start end size offset [perms] objfile
                if len(parts) >= 5 and parts[0].startswith('0x'):
                    path = parts[-1]
                    if path.startswith('/') and int(parts[3], 16) == 0 and path not in modules:
                        modules[path] = int(parts[0], 16)
                i += 1
        elif line == '===STOP':
            stop += 1
            regs = []
            i += 1
            while i < len(lines) and lines[i] != '===BT':
                parts = lines[i].split()
                if len(parts) >= 2 and parts[1].startswith('0x'):
                    regs.append('%s %s' % (parts[0], parts[1]))
                i += 1
            with open(os.path.join(out, 'stop-%d.regs' % stop), 'w') as f:
                f.write('\n'.join(regs) + '\n')
            frames = []
            i += 1
            while i < len(lines) and lines[i] != '===ENDBT':
                fr = parse_frame(lines[i])
                if fr:
                    frames.append('%s\t%s\t%s' % (fr[0], fr[1] or '-', fr[2] or '0'))
                elif lines[i].rstrip().endswith('<signal handler called>'):
                    frames.append('<signal handler called>\t-\t0')
                elif lines[i].startswith('#'):
                    frames.append('%s\t-\t0' % lines[i].split()[-1])  # keeps the count honest; never matches
                i += 1
            with open(os.path.join(out, 'stop-%d.bt' % stop), 'w') as f:
                f.write('\n'.join(frames) + '\n')
        elif line.startswith('===SP ') and stop >= 0:
            with open(os.path.join(out, 'stop-%d.sp' % stop), 'w') as f:
                f.write(line.split()[1] + '\n')
        i += 1
    with open(os.path.join(out, 'modules.txt'), 'w') as f:
        for path, start in modules.items():
            f.write('0x%x %s\n' % (start, path))
    with open(os.path.join(out, 'count'), 'w') as f:
        f.write('%d\n' % (stop + 1))


if __name__ == '__main__':
    sys.exit(main())
