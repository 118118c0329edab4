#!/usr/bin/env python3
"""End-to-end checks of the outputs people open: drcctprof, pprof (read by go tool pprof), the HTML report (in
headless Chromium) and profile diffs, each against the others and against the run's JSON summary.

usage: outputs.py formats --collector BIN --agent BIN --module M [--trace FN] [--artifacts DIR] -- PROGRAM [ARGS...]
       outputs.py diff --collector BIN --agent BIN --module memory -- PROGRAM N1 N2
"""
import argparse
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsprof_test as t  # noqa: E402

# Where each module's metric totals stand in the JSON summary, and their unit there.
SUMMARY_KEYS = {
    "allocations": ("memory", "allocs", 1), "bytes_allocated": ("memory", "bytes_allocated", 1),
    "frees": ("memory", "frees", 1), "bytes_freed": ("memory", "bytes_freed", 1),
    "leaked_bytes": ("memory", "leaked_bytes", 1), "leaked_blocks": ("memory", "leaked_blocks", 1),
    "contended_locks": ("mutex", "contended", 1), "lock_wait": ("mutex", "wait_ms", 1000),
    "calls": ("calls", "calls", 1),
}


def trace(a, argv, *extra):
    srv = t.Server("agent", a.agent, argv)
    d = srv.tmp
    paths = {k: os.path.join(d, n) for k, n in
             (("prof", "p.drcctprof"), ("pprof", "p.pb.gz"), ("html", "p.html"), ("json", "s.json"))}
    t.collector(a.collector, srv.port, "--module", a.module, "-o", paths["prof"], "--pprof", paths["pprof"],
                "--html", paths["html"], "--summary-json", paths["json"], *extra)
    srv.wait()
    for k, p in paths.items():
        if not os.path.exists(p) or os.path.getsize(p) == 0:
            t.fail(f"the collector did not write its {k} output {p}")
    return paths, json.load(open(paths["json"]))


def report(a, *args):
    r = subprocess.run([a.collector, "report", *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        t.fail(f"report {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r.stdout


def folded(a, prof, metric):
    """{frames outermost first, without the THREAD root: value} from report --format folded."""
    out = {}
    for line in report(a, prof, "--format", "folded", "--metric", metric).splitlines():
        stack, _, value = line.rpartition(" ")
        frames = tuple(stack.split(";")[1:])  # the first frame is THREAD[tid]
        out[frames] = out.get(frames, 0) + int(value)
    return out


def pprof_traces(pprof, metric):
    """{frames outermost first: value} of one sample type, from go tool pprof -raw (exact values)."""
    r = subprocess.run(["go", "tool", "pprof", "-raw", pprof], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": tempfile.gettempdir()})
    if r.returncode != 0:
        t.fail(f"go tool pprof -raw failed: {r.stderr}")
    lines = r.stdout.splitlines()
    head = lines.index("Samples:") + 1
    column = [c.split("/")[0] for c in lines[head].split()].index(metric)
    samples, locs, loc = [], {}, None
    section = "samples"
    for line in lines[head + 1:]:
        if line.strip() in ("Locations", "Mappings"):
            section = line.strip()
            continue
        if section == "samples":
            m = re.match(r"^\s*([-0-9 ]+):((?: \d+)*)\s*$", line)
            if m:
                samples.append((int(m.group(1).split()[column]), [int(x) for x in m.group(2).split()]))
        elif section == "Locations":
            m = re.match(r"^\s*(\d+): 0x[0-9a-f]+ M=\d+ (.*?) \S*:\d+ s=", line)
            if m:
                loc = int(m.group(1))
                locs[loc] = [m.group(2)]
            else:
                m = re.match(r"^\s+(.*?) \S*:\d+ s=", line)
                if m and loc is not None:
                    locs[loc].append(m.group(1))  # an inlined frame of the same location, caller last
    out = {}
    for value, ids in samples:
        frames = [f for i in ids for f in locs[i]]  # leaf first
        key = tuple(reversed(frames))
        if value:
            out[key] = out.get(key, 0) + value
    return out


def pprof_total(pprof, metric, unit):
    """The total go tool pprof -top reports, printed in the sample type's base unit."""
    base = {"bytes": "B", "nanoseconds": "ns"}.get(unit, unit)
    r = subprocess.run(["go", "tool", "pprof", "-top", "-unit=" + base, "-sample_index=" + metric, pprof],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": tempfile.gettempdir()})
    m = re.search(r"of ([0-9.]+)([a-zA-Z]*) total", r.stdout)
    if r.returncode != 0 or not m:
        t.fail(f"go tool pprof -top: no total for {metric}:\n{r.stdout}\n{r.stderr}")
    unit = {"B": 1, "ns": 1, "": 1}
    return round(float(m.group(1)) * unit.get(m.group(2), 1)), m.group(2)


def png_colours(path):
    """How many distinct pixel values a PNG screenshot (8-bit RGB or RGBA, no interlace) has."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        t.fail(f"{path} is not a PNG")
    pos, idat, width, height, depth, ctype = 8, b"", 0, 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = {2: 3, 6: 4}.get(ctype)
    if depth != 8 or not bpp:
        t.fail(f"unexpected PNG format (depth {depth}, colour type {ctype})")
    raw, stride, colours, prev = zlib.decompress(idat), width * bpp, set(), bytearray(width * bpp)
    for y in range(height):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up, ul = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                row[i] = (row[i] + left) & 255
            elif f == 2:
                row[i] = (row[i] + up) & 255
            elif f == 3:
                row[i] = (row[i] + (left + up) // 2) & 255
            elif f == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else ul)) & 255
        if y % 4 == 0:
            colours.update(bytes(row[i:i + bpp]) for i in range(0, stride, bpp * 4))
        prev = row
    return len(colours)


def chromium(html, shot):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        t.skip("chromium is not installed (scripts/install-deps installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1200,1600", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    with tempfile.TemporaryDirectory() as profile_dir:
        url = "file://" + os.path.abspath(html)
        dom = subprocess.run([exe, *flags, "--user-data-dir=" + profile_dir, "--dump-dom", url],
                             capture_output=True, text=True, timeout=120)
        pic = subprocess.run([exe, *flags, "--user-data-dir=" + profile_dir, "--screenshot=" + shot, url],
                             capture_output=True, text=True, timeout=120)
    console = [ln for ln in (dom.stderr + pic.stderr).splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    if dom.returncode != 0 or not os.path.exists(shot):
        t.fail(f"chromium failed (exit {dom.returncode}/{pic.returncode}): {dom.stderr[-1500:]}")
    return dom.stdout, console


def check_formats(a):
    paths, summary = trace(a, a.argv, *(["--trace", a.trace] if a.trace else []))
    units = {m["name"]: m["unit"] for m in json.loads(report(a, paths["prof"], "--format", "json"))["metrics"]}
    metrics = list(units)
    if not metrics:
        t.fail("the profile has no metrics")
    dom, console = chromium(paths["html"], os.path.join(a.artifacts, f"report-{a.module}.png"))
    if console:
        t.fail("the page logged to the console:\n" + "\n".join(console))
    for m in metrics:
        section, key, scale = SUMMARY_KEYS[m]
        want = summary[section][key] * scale
        stacks = folded(a, paths["prof"], m)
        total = sum(stacks.values())
        # drcctprof against the JSON summary (lock_wait is µs in the profile, ms as a float in the summary)
        # (each event's wait is rounded to a microsecond in the profile)
        if (abs(total - want) > summary["events"]) if scale != 1 else total != want:
            t.fail(f"{m}: the drcctprof profile sums to {total}, the summary says {want}")
        # pprof against drcctprof: the total, and every stack with its value
        pscale = 1000 if m == "lock_wait" else 1
        ptotal, unit = pprof_total(paths["pprof"], m, "nanoseconds" if m == "lock_wait" else units[m])
        if ptotal != total * pscale:
            t.fail(f"{m}: go tool pprof -top says {ptotal}{unit} in total, the profile {total} ({pscale}x)")
        traces = pprof_traces(paths["pprof"], m)
        want_traces = {k: v * pscale for k, v in stacks.items() if v}
        if traces != want_traces:
            only_p = {k: v for k, v in traces.items() if want_traces.get(k) != v}
            only_f = {k: v for k, v in want_traces.items() if traces.get(k) != v}
            t.fail(f"{m}: pprof's traces differ from the folded stacks:\npprof: {only_p}\nfolded: {only_f}")
        # the HTML report's totals table, as the browser rendered it
        cell = re.search(r"<td>" + re.escape(m) + r'</td><td class="num" data-metric="\d+">(-?\d+)</td>', dom)
        if not cell or int(cell.group(1)) != total:
            t.fail(f"{m}: the HTML totals show {cell.group(1) if cell else 'nothing'}, the profile {total}")
        print(f"{m}: {total} in drcctprof, pprof ({ptotal}{unit}), HTML; summary {want}; "
              f"{len(stacks)} stacks, pprof traces equal")
    # pprof's mappings name the program with its build-id, as readelf reads it from the file.
    note = subprocess.run(["readelf", "-n", a.argv[0]], capture_output=True, text=True).stdout
    build_id = re.search(r"Build ID: ([0-9a-f]+)", note)
    raw = subprocess.run(["go", "tool", "pprof", "-raw", paths["pprof"]], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "HOME": tempfile.gettempdir()}).stdout
    maps = raw.split("Mappings", 1)[-1]
    if not build_id or not any(os.path.basename(a.argv[0]) in ln and build_id.group(1) in ln
                               for ln in maps.splitlines()):
        t.fail(f"pprof has no mapping for {a.argv[0]} with build-id {build_id and build_id.group(1)}:\n{maps}")
    print(f"pprof: mapping for {os.path.basename(a.argv[0])} with build-id {build_id.group(1)}")
    # The icicle graph drew boxes named after the program's frames, and the page is not blank.
    cells = re.findall(r'<div class="cell[^"]*"[^>]*data-name="([^"]*)"', dom)
    frames = {f for stacks in [folded(a, paths["prof"], metrics[0])] for s in stacks for f in s}
    drawn = {html.unescape(c) for c in cells}
    missing = [f for f in frames if f not in drawn and not f.startswith("[")]
    if not cells or missing:
        t.fail(f"the icicle graph has {len(cells)} boxes; frames not drawn: {missing[:10]}")
    colours = png_colours(os.path.join(a.artifacts, f"report-{a.module}.png"))
    if colours < 8:
        t.fail(f"the screenshot has only {colours} colours: the page looks blank")
    print(f"HTML: {len(cells)} boxes drawn, every frame present, no console output, screenshot with {colours} "
          f"colours in {a.artifacts}")


def check_diff(a):
    program, n1, n2 = a.argv[0], a.argv[-2], a.argv[-1]
    base, sb = trace(a, [program, *a.argv[1:-2], n1])
    new, sn = trace(a, [program, *a.argv[1:-2], n2])
    r = subprocess.run([a.collector, "report", "--diff", base["prof"], new["prof"], "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        t.fail(f"report --diff exited {r.returncode}: {r.stderr}")
    diff = {m["name"]: m for m in json.loads(r.stdout)["metrics"]}
    for m, (section, key, _) in SUMMARY_KEYS.items():
        if m not in diff:
            continue
        want = sn[section][key] - sb[section][key]
        if diff[m]["base"] != sb[section][key] or diff[m]["new"] != sn[section][key] or diff[m]["delta"] != want:
            t.fail(f"{m}: diff says {diff[m]['base']} -> {diff[m]['new']} ({diff[m]['delta']}), "
                   f"the summaries {sb[section][key]} -> {sn[section][key]}")
        changed = sum(c["delta"] for c in diff[m]["contexts"])
        if len(diff[m]["contexts"]) < 10 and changed != want:
            t.fail(f"{m}: the changed contexts add up to {changed}, the totals to {want}")
        print(f"{m}: {diff[m]['base']} -> {diff[m]['new']} ({diff[m]['delta']:+}), {len(diff[m]['contexts'])} "
              f"contexts changed")
    growth = diff["allocations"]["percent"]
    text = subprocess.run([a.collector, "report", "--diff", base["prof"], new["prof"]],
                          capture_output=True, text=True, timeout=60)
    if text.returncode != 0 or f"allocations (count): base {sb['memory']['allocs']}" not in text.stdout:
        t.fail(f"the text diff does not show the allocation totals:\n{text.stdout}\n{text.stderr}")
    # The gate: fails (exit 7, one line naming the metric) just under the real growth, passes just over it.
    for limit, want_rc in ((growth - 1, 7), (growth + 1, 0)):
        g = subprocess.run([a.collector, "report", "--diff", base["prof"], new["prof"],
                            "--fail-on-growth", f"allocations:{limit:.2f}"], capture_output=True, text=True, timeout=60)
        if g.returncode != want_rc:
            t.fail(f"--fail-on-growth allocations:{limit:.2f} (growth {growth:.2f}%) exited {g.returncode}, "
                   f"want {want_rc}: {g.stderr}")
        if want_rc == 7 and "--fail-on-growth allocations" not in g.stderr:
            t.fail(f"the failed gate did not say which: {g.stderr}")
    g = subprocess.run([a.collector, "report", "--diff", base["prof"], new["prof"], "--fail-on-growth", "nosuch:1"],
                       capture_output=True, text=True, timeout=60)
    if g.returncode != 2 or "nosuch" not in g.stderr:
        t.fail(f"a gate on an unknown metric exited {g.returncode}: {g.stderr}")
    print(f"gate: exit 7 below the {growth:.1f}% growth, 0 above it, 2 for an unknown metric")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("check", choices=["formats", "diff"])
    p.add_argument("--collector", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--module", default="memory")
    p.add_argument("--trace", help="the function the calls module counts")
    p.add_argument("--artifacts", default=tempfile.gettempdir())
    p.add_argument("argv", nargs="+")
    a = p.parse_args()
    t.require_ptrace()
    if a.check == "formats" and not shutil.which("go"):
        t.skip("go is not installed (scripts/install-deps installs golang-go for go tool pprof)")
    os.makedirs(a.artifacts, exist_ok=True)
    {"formats": check_formats, "diff": check_diff}[a.check](a)


if __name__ == "__main__":
    main()
