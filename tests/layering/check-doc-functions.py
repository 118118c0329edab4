#!/usr/bin/env python3
"""Checks that every function docs/architecture.md names (a `name_with_underscores` in backquotes) is
defined in agent/, collector/ or common/, and in the file named right after it ("`fn` (agent/x/y.c)")
where one is, so the walk-through of an event stays true to the code."""
import os
import re
import sys

root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
doc = os.path.join(root, "docs", "architecture.md")
names = sorted(set(re.findall(r"`([a-z][a-z0-9]*_[a-z0-9_]+)`", open(doc).read())))

defined = {}  # function -> files defining it
definition = re.compile(r"^[A-Za-z][^;=]*?\b([a-z_][a-z0-9_]*)\(")  # definitions start at column 0
for side in ("agent", "collector", "common"):
    for dirpath, _, files in os.walk(os.path.join(root, side)):
        for f in files:
            if f.endswith(".c"):
                path = os.path.relpath(os.path.join(dirpath, f), root)
                for line in open(os.path.join(root, path), errors="replace"):
                    m = definition.match(line)
                    if m:
                        defined.setdefault(m.group(1), set()).add(path)

missing = [n for n in names if n not in defined]
for n in missing:
    print(f"docs/architecture.md names {n}, which no .c file of agent/, collector/ or common/ defines")
text = open(doc).read()
for fn, path in re.findall(r"`([a-z][a-z0-9]*_[a-z0-9_]+)` \(((?:agent|collector|common)/[\w/.-]+\.c)", text):
    if fn in defined and path not in defined[fn]:
        missing.append(fn)
        print(f"docs/architecture.md places {fn} in {path}; it is defined in {', '.join(sorted(defined[fn]))}")
print(f"check-doc-functions: {len(names)} functions named, {len(missing)} missing")
sys.exit(1 if missing or not names else 0)
