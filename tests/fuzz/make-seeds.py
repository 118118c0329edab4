#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ from the recorded gdb/gdbserver transcript and
hand-made sessions; run it again after changing a target's input format. Seeds that come from build
outputs (ELF files, profiles) are copied by hand: see tests/fuzz/README.md."""
import os
import struct
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


def main():
    frames = transcript()
    codec_seeds(frames)
    agent_seeds(frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
