#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ from the recorded gdb/gdbserver transcript and
hand-made sessions; run it again after changing a target's input format. Seeds that come from build
outputs (ELF files, profiles) are copied by hand: see tests/fuzz/README.md."""
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def frame(payload):
    if isinstance(payload, str):
        payload = payload.encode("latin-1")
    out = bytearray()
    for b in payload:
        if b in b"#$}*":
            out += bytes([ord("}"), b ^ 0x20])
        else:
            out.append(b)
    return b"$" + bytes(out) + b"#%02x" % (sum(out) & 0xFF)


def hexs(s):
    return s.encode().hex()


def transcript():
    """The recorded frames as (direction, bytes)."""
    frames = []
    with open(os.path.join(ROOT, "tests/unit/data/gdb-gdbserver.frames")) as f:
        for line in f:
            if line.startswith("#") or len(line) < 3:
                continue
            frames.append((line[0], bytes.fromhex(line[2:].strip())))
    return frames


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def codec_seeds(frames):
    # Byte 0: payload limit index (9: 4096), byte 1: split pattern.
    both = b"".join(b for _, b in frames[:60])
    write("rsp-codec", "transcript", b"\x09\x05" + both)
    write("rsp-codec", "replies", b"\x09\x00" + b"".join(b for d, b in frames if d == "<")[:6000])
    write("rsp-codec", "rle-escape", b"\x09\x03" + b"+$0* 0*\"#" + b"%02x" % (sum(b"0* 0*\"") & 0xFF)
          + frame(bytes(range(256))) + b"-\x03")
    write("rsp-codec", "damaged", b"\x04\x07" + b"$abc#zz$de*\x01f#00$}#00+" + b"$" + b"x" * 200 + b"#00")
    write("rsp-codec", "small-limit", b"\x01\x02" + frame("abcdef") + frame("a*") + b"$a*~#00")


def agent_packets():
    small, big = hexs("small"), hexs("big")
    return [
        "qSupported:multiprocess+;swbreak+;xmlRegisters=i386", "QStartNoAckMode", "vCont?", "?",
        "qXfer:features:read:target.xml:0,1000", "qXfer:exec-file:read::0,ffb", "qXfer:auxv:read::0,1000",
        "qXfer:libraries-svr4:read::0,fff", "qXfer:threads:read::0,fff", "qfThreadInfo", "qsThreadInfo", "qC",
        "qAttached", "Hg0", "Hc-1", "Tp7fff0000.7fff0001", "g", "p10", "P10=0010400000000000", "m400000,40",
        "x400000,100", "M7ffd00008000,4:01020304", "X7ffd00008010,3:abc", "Z0,401010,1", "Z0,401020,1",
        "QRsprofQuiet:401020,1", "QRsprofStopStack:80", "QRsprofStopTime:1", "QPassSignals:e;14;1a",
        "vFile:setfs:0", "vFile:open:%s,0,0" % small, "vFile:pread:0,100,0", "vFile:fstat:0", "vFile:close:0",
        "vFile:open:%s,0,0" % big, "vFile:pread:0,8000,1000", "vFile:readlink:%s" % hexs("link"),
        "vFile:pwrite:0,0,abc", "qSymbol::",
    ]


def agent_seeds(frames):
    # Byte 0: settings (1 --multi, 2 start launched, 4 no default program, 8 fix checksums); '\n' ends a
    # piece, after which the server hears of a child event.
    gdb = b"".join(b + b"\n" for d, b in frames if d == ">")
    write("agent-server", "gdb-session", b"\x02" + gdb)
    pk = agent_packets()
    session = b"".join(frame(p) + b"\n" for p in pk)
    write("agent-server", "rsprof-session", b"\x02" + b"+" + session)
    resume = [frame(p) for p in ("vCont;c", "c", "vCont;s:p7fff0000.7fff0001", "C0b", "vCont;C09")]
    write("agent-server", "resume", b"\x02" + session + b"\n".join(r + b"\n" for r in resume) + b"\n\x03\n")
    write("agent-server", "interrupt", b"\x0a" + frame("Z0,401010,1") + frame("c") + b"\n\x03\n" + frame("g")
          + b"\n" + frame("D"))
    multi = [frame(p) for p in ("!", "QDisableRandomization:1", "vRun;%s;%s" % (hexs("prog"), hexs("a")),
                                "vAttach;7fff0003", "vKill;7fff0003", "vRun;", "k")]
    write("agent-server", "multi", b"\x09" + b"\n".join(multi) + b"\n")
    write("agent-server", "no-process", b"\x08" + b"".join(frame(p) + b"\n" for p in pk[:12]))


AGENT_SUPPORTED = ("PacketSize=20000;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
                   "qXfer:libraries-svr4:read+;qXfer:exec-file:read+;qXfer:threads:read+;swbreak+;vContSupported+;"
                   "binary-upload+;QPassSignals+;QDisableRandomization+;rsprof-stepover+;rsprof-stopstack+;"
                   "rsprof-quietbreak+;rsprof-stoptime+;multiprocess+")
GDBSERVER_SUPPORTED = "PacketSize=47ff;QPassSignals+;qXfer:libraries-svr4:read+;qXfer:auxv:read+;" \
                      "qXfer:features:read+;QStartNoAckMode+;multiprocess+;swbreak+;qXfer:exec-file:read+;vContSupported+"
TARGET_XML = "l<?xml version=\"1.0\"?><target version=\"1.0\"><architecture>i386:x86-64</architecture></target>"
SVR4 = ('l<library-list-svr4 version="1.0" main-lm="0x404000"><library name="/lib/x86_64-linux-gnu/libc.so.6" '
        'lm="0x404100" l_addr="0x7f0000000000" l_ld="0x402000" lmid="0x403000"/><library '
        'name="/opt/a&amp;b&lt;c&gt;&quot;d&apos;e&#x41;.so" lm="0x404200" l_addr="0x7f0000100000" l_ld="0x402000" '
        'lmid="0x403000"/></library-list-svr4>')


def le64(*vals):
    return b"".join(struct.pack("<Q", v) for v in vals)


def elf_prefix():
    """An ELF header and one PT_NOTE program header with a GNU build-id note, as vFile:pread returns it."""
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0x1000, 64, 0, 0, 64, 56, 1,
                                                                64, 0, 0)
    note = struct.pack("<III", 4, 20, 3) + b"GNU\x00" + bytes(range(0x40, 0x54))
    phdr = struct.pack("<IIQQQQQQ", 4, 4, 120, 120, 120, len(note), len(note), 4)
    return ehdr + phdr + note


def session_replies(supported, binary):
    """The agent's answers, in the order the session harness asks (see fuzz-collector-session.c)."""
    mem = (lambda b: b"b" + b) if binary else (lambda b: b.hex().encode())
    auxv = le64(3, 0x400040, 4, 56, 5, 2, 9, 0x401000, 7, 0x7fff10000000, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 6, 4, 0x40, 0x40, 0x40, 112, 112, 8) + \
        struct.pack("<IIQQQQQQ", 2, 6, 0x2000, 0x2000, 0x2000, 0x40, 0x40, 8)
    dyn = le64(1, 1, 21, 0x403000, 0, 0).ljust(512, b"\0")
    elf = elf_prefix()
    r = [supported, "OK", "vCont;c;C;s;S;t", "F-1,9",
         "T05thread:p7fff0000.7fff0000;07:0080000000000000;10:0010400000000000;", TARGET_XML, "l/usr/bin/prog",
         b"l" + auxv, mem(phdrs), mem(dyn), mem(le64(0x401100)), SVR4,
         "mp7fff0000.7fff0000,p7fff0000.7fff0001", "l",
         "mp7fff0000.7fff0000", "l", SVR4]
    # binfind: remote build-id of each library and the executable (open, preads, close).
    for _ in range(3):
        r += ["F5", b"F40;" + elf[:64], b"F38;" + elf[64:120], b"F%x;" % len(elf[120:]) + elf[120:], "F0"]
    r += ["T05thread:p7fff0000.7fff0001;swbreak:;rsprof-time:1f4;rsprof-quiet:7fff0001/401000/7ffd00008000/2a/1f0;"
          "rsprof-stack:" + "ab" * 40,
          "OK", "aa" * 560, mem(bytes(range(200))) , "aa" * 560, mem(bytes(3000)), "OK", "OK",
          "OK", "T05thread:p7fff0000.7fff0001;", "T05thread:p7fff0000.7fff0001;", "OK",
          "O48656c6c6f0a", "W00;process:7fff0000;rsprof-quiet:7fff0001/401000/7ffd00008000/2a/1f2",
          "OK", "mp7fff0000.7fff0000", "l", 'l<?xml version="1.0"?><threads></threads>',
          "F5", b"F40;" + bytes(64), b"F10;" + b"0123456789abcdef", "F0", "F9;/bin/prog",
          "F6", b"F%x;" % len(elf) + elf, "F0", "F0", "F-1,2", "OK", "OK"]
    return b"\n".join(x.encode() if isinstance(x, str) else x for x in r)


def session_seeds(frames):
    # Byte 0: settings (1 raw stream, 2 fix checksums in it; the rest: how reads are cut).
    write("collector-session", "rsprof-agent", b"\x00" + session_replies(AGENT_SUPPORTED, True))
    write("collector-session", "rsprof-agent-split", b"\x14" + session_replies(AGENT_SUPPORTED, True))
    write("collector-session", "gdbserver", b"\x00" + session_replies(GDBSERVER_SUPPORTED, False))
    raw = b"".join(b for d, b in frames if d == "<")
    write("collector-session", "gdbserver-raw", b"\x07" + raw)


def replies_seeds(frames):
    # Byte 0: parser (0 stop reply, 2 svr4 list, 4 architecture name; odd: exact-size buffer).
    stops = ["T0510:2200000000000000;thread:p10.11;swbreak:;rsprof-time:1f4;"
             "rsprof-quiet:11/4005d0/7ffe10/2a/1f0,12/4005d0/7ffe80/0/1f2;rsprof-stack:AB;CD",
             "W00;process:2a;rsprof-quiet:2a/1000/2000/7/9", "X09;process:2a", "S05", "W7;process:b88",
             "T0206:0000000000000000;07:f0e1ffffff7f0000;10:5011400000000000;thread:p1e2b.1e2b;core:1;"]
    for i, st in enumerate(stops):
        write("collector-replies", "stop-%d" % i, b"\x00" + st.encode())
    for i, (_, b) in enumerate([f for f in frames if f[0] == "<" and f[1].startswith(b"$T")][:4]):
        write("collector-replies", "stop-gdbserver-%d" % i, b"\x00" + b[1:-3])
    write("collector-replies", "svr4", b"\x02" + SVR4[1:].encode())
    write("collector-replies", "svr4-exact", b"\x03" + SVR4[1:].encode())
    write("collector-replies", "arch", b"\x04i386:x86-64")


def elf_seeds():
    """Small ELF files with DWARF and CFI; page-size options keep them small. Skips missing compilers."""
    small = ["-Wl,-z,max-page-size=0x1000", "-Wl,-z,noseparate-code", "-Wl,--build-id"]
    unw = os.path.join(ROOT, "tests/unwind/fixtures/unw-c.c")
    cxx = os.path.join(HERE, "seed-src/module-cxx.cc")
    builds = [
        ("x86_64-o2", ["gcc", "-O2", "-g", "-fPIE", "-pie", "-fomit-frame-pointer", unw]),
        ("x86_64-debug-frame", ["gcc", "-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", unw]),
        ("x86_64-no-cfi", ["gcc", "-O0", "-g0", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", unw]),
        ("x86_64-cxx.so", ["g++", "-O2", "-g", "-fPIC", "-shared", "-nostdlib", cxx]),
        ("aarch64.so", ["aarch64-linux-gnu-gcc", "-O2", "-g", "-fPIC", "-shared", unw]),
    ]
    d = os.path.join(CORPUS, "elf-module")
    os.makedirs(d, exist_ok=True)
    for name, cmd in builds:
        if not shutil.which(cmd[0]):
            print("make-seeds: %s not found, %s not rebuilt" % (cmd[0], name))
            continue
        subprocess.run(cmd + small + ["-o", os.path.join(d, name)], check=True)


def main():
    frames = transcript()
    codec_seeds(frames)
    agent_seeds(frames)
    session_seeds(frames)
    replies_seeds(frames)
    elf_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
