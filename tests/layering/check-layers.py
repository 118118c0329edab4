#!/usr/bin/env python3
"""Checks every #include of agent/, collector/ and common/ against the layer table (layers.txt).

Each quoted include is resolved to the header it names (the including file's folder first, then the
folders of its own side: agent/ or collector/, plus common/ and the generated headers), and fails when
the header's folder is not the including file's folder nor one the table lets it see. System headers
listed as `extern` may appear only in their folders. No two files, .c/.h modules or folders may include
each other, directly or round a longer cycle. Every file opens with a comment saying what it is for.
Prints one line per problem, naming file and line, and exits 1 when there is any.

Usage: check-layers.py [--root DIR] [--table FILE]
"""
import argparse
import fnmatch
import os
import re
import sys

SIDES = ("agent", "collector", "common")
# Headers made by the build, and the folder that owns each.
GENERATED = {"version.h": "common", "drcctprof.pb-c.h": "proto"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def read_table(path):
    allowed, extern, problems = {}, [], []
    with open(path) as f:
        for no, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            head, sep, rest = line.partition(":")
            if not sep:
                problems.append(f"{path}:{no}: expected 'FOLDER: FOLDER...'")
                continue
            head, deps = head.strip(), rest.split()
            if head.startswith("extern "):
                extern.append((head[len("extern "):].strip(), set(deps), no))
            elif head in allowed:
                problems.append(f"{path}:{no}: {head} is listed twice")
            else:
                allowed[head] = set(deps)
    for folder, deps in allowed.items():
        for d in deps - set(allowed):
            problems.append(f"{path}: {folder} depends on {d}, which the table does not list")
    return allowed, extern, problems


def closure(allowed):
    """What each folder may see: its own dependencies and everything below them."""
    seen = {}

    def visit(folder, stack):
        if folder in seen:
            return seen[folder]
        if folder in stack:
            raise ValueError(" -> ".join(stack + [folder]))
        out = set()
        for d in allowed.get(folder, ()):
            out |= {d} | visit(d, stack + [folder])
        seen[folder] = out
        return out

    for folder in allowed:
        visit(folder, [])
    return seen


def source_files(root):
    for side in SIDES:
        for dirpath, _, names in os.walk(os.path.join(root, side)):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def find_cycle(graph):
    """One cycle of a directed graph {node: set(nodes)} as a list, or None."""
    state, path = {}, []

    def dfs(n):
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                found = dfs(m)
                if found:
                    return found
        state[n] = 2
        path.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            found = dfs(n)
            if found:
                return found
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")))
    ap.add_argument("--table", default=os.path.join(here, "layers.txt"))
    args = ap.parse_args()

    allowed, extern, problems = read_table(args.table)
    try:
        visible = closure(allowed)
    except ValueError as cycle:
        print(f"{args.table}: the table has a cycle: {cycle}")
        return 1

    files = list(source_files(args.root))
    by_name = {}  # (side, basename) -> [paths]; common/ belongs to both sides
    for path in files:
        side = path.split(os.sep)[0]
        for s in ((side,) if side != "common" else SIDES):
            by_name.setdefault((s, os.path.basename(path)), []).append(path)

    file_graph, module_graph = {}, {}
    checked = 0
    for path in files:
        folder = os.path.dirname(path)
        side = path.split(os.sep)[0]
        if folder not in allowed:
            problems.append(f"{path}: its folder {folder} is not in {os.path.basename(args.table)}")
            continue
        module = os.path.splitext(path)[0]
        with open(os.path.join(args.root, path), errors="replace") as f:
            if not f.read(2) == "/*":
                problems.append(f"{path}:1: does not open with a comment saying what the file is for")
            f.seek(0)
            for no, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                checked += 1
                kind, name = m.groups()
                if kind == "<":
                    for pattern, folders, _ in extern:
                        if fnmatch.fnmatch(name, pattern) and folder not in folders:
                            problems.append(f"{path}:{no}: <{name}> belongs to {', '.join(sorted(folders))} only")
                    continue
                local = os.path.normpath(os.path.join(folder, name))
                if os.path.isfile(os.path.join(args.root, local)):
                    target = local
                elif os.path.basename(name) in GENERATED and name == os.path.basename(name):
                    target_folder = GENERATED[name]
                    if target_folder != folder and target_folder not in visible[folder]:
                        problems.append(f"{path}:{no}: \"{name}\" is generated for {target_folder}, "
                                        f"which {folder} may not include")
                    continue
                else:
                    hits = by_name.get((side, os.path.basename(name)), [])
                    hits = [h for h in hits if h.endswith(os.sep + name) or h.endswith(name)]
                    if not hits:
                        problems.append(f"{path}:{no}: \"{name}\" is no header of {side}/ or common/")
                        continue
                    if len(hits) > 1:
                        problems.append(f"{path}:{no}: \"{name}\" is ambiguous: {', '.join(hits)}")
                        continue
                    target = hits[0]
                to = os.path.dirname(target)
                if to != folder and to not in visible[folder]:
                    direction = "up" if folder in visible.get(to, ()) else "sideways"
                    problems.append(f"{path}:{no}: includes {target}: {folder} may not include {to} "
                                    f"(goes {direction}; see {os.path.basename(args.table)})")
                file_graph.setdefault(path, set()).add(target)
                target_module = os.path.splitext(target)[0]
                if target_module != module:
                    module_graph.setdefault(module, set()).add(target_module)

    for what, graph in (("files", file_graph), ("modules (a .c with its .h)", module_graph)):
        cycle = find_cycle(graph)
        if cycle:
            problems.append(f"include cycle between {what}: {' -> '.join(cycle)}")

    for p in problems:
        print(p)
    folders = len({os.path.dirname(p) for p in files})
    print(f"check-layers: {checked} includes in {len(files)} files of {folders} folders, "
          f"{len(problems)} problem{'s' if len(problems) != 1 else ''}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
