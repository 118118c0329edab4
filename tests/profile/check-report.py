#!/usr/bin/env python3
"""Checks `report --format json` and `--format folded` of the hand-built profile (tests/profile/fake.c) with
Python's own JSON parser: the output must parse, and its numbers must equal the events fake.c records."""

import json
import os
import subprocess
import sys
import tempfile



def varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def fields(buf):
    """Decodes protobuf wire format (independently of protobuf-c): yields (field number, value)."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
            assert i <= len(buf), "length past the end"
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise AssertionError("wire type %d" % wt)
        yield num, v


def check_wire(data):
    strings, contexts = [], []
    for num, v in fields(data):
        if num == 7:
            strings.append(v.decode("utf-8", "surrogateescape"))
        elif num == 3:
            c = {"children": []}
            for f, x in fields(v):
                if f == 4:  # packed repeated uint64
                    j = 0
                    while j < len(x):
                        k, j = varint(x, j)
                        c["children"].append(k)
                else:
                    c[f] = x
            contexts.append(c)
    assert strings and strings[0] == "", strings[:3]
    ids = {c.get(1, 0) for c in contexts}
    assert 0 not in ids and len(ids) == len(contexts) == 17, (len(ids), len(contexts))
    for c in contexts:
        assert c.get(3, 0) < c[1], c
        assert c.get(3, 0) == 0 or c[3] in ids, c
        for k in c["children"]:
            assert k in ids
    assert sum(1 for c in contexts if c.get(3, 0) == 0) == 1


demo = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "fake.drcctprof")
    subprocess.run([demo, "write", path], check=True)
    with open(path, "rb") as f:
        check_wire(f.read())
    out = subprocess.run([demo, "report", path, "--format", "json"], check=True, capture_output=True).stdout
    doc = json.loads(out.decode("utf-8"))  # strict: invalid UTF-8 or escapes fail here

    assert [m["name"] for m in doc["metrics"]] == ["allocs", "bytes"], doc["metrics"]
    assert [m["unit"] for m in doc["metrics"]] == ["count", "bytes"], doc["metrics"]
    samples = doc["samples"]
    # fake.c: 8 sampled contexts (0x3000 and 0x3004 are separate contexts), totals 15 allocs / 731 bytes
    assert len(samples) == 8, len(samples)
    assert sum(s["values"][0] for s in samples) == 15
    assert sum(s["values"][1] for s in samples) == 731
    for s in samples:
        stack = s["stack"]
        assert stack[0]["function"] == "PROCESS[77] app", stack[0]
        assert stack[1]["function"].startswith("THREAD["), stack[1]
        assert all(isinstance(f["line"], int) and f["line"] >= 0 for f in stack)
    names = {tuple(f["function"] for f in s["stack"][2:]): s for s in samples}
    inl = names[("main", "caller_b", "inl_helper")]
    assert [f["inlined"] for f in inl["stack"][2:]] == [False, False, True]
    assert inl["stack"][4]["file"] == "/src/app/util.h" and inl["stack"][4]["line"] == 3
    assert inl["values"] == [1, 8]
    escaped = [s for s in samples if s["values"] == [0, 7]]
    assert len(escaped) == 1
    assert escaped[0]["stack"][-1]["function"] == 'op"quote\\back\x01ctl\ttab\ufffd', escaped[0]["stack"][-1]

    folded = subprocess.run([demo, "report", path, "--format", "folded"], check=True, capture_output=True).stdout
    lines = folded.decode("utf-8").splitlines()
    stacks = [l.rsplit(" ", 1)[0] for l in lines]
    assert len(stacks) == len(set(stacks)), lines
    assert sum(int(l.rsplit(" ", 1)[1]) for l in lines) == 15
    assert lines == sorted(lines)

    bad = os.path.join(tmp, "bad.drcctprof")
    with open(bad, "wb") as f:
        f.write(open(path, "rb").read()[:50])
    r = subprocess.run([demo, "report", bad], capture_output=True)
    assert r.returncode == 1 and b"bad.drcctprof" in r.stderr, r
print("ok")
