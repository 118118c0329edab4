#!/usr/bin/env python3
"""Checks that every function docs/architecture.md names (a `name_with_underscores` in backquotes) is
defined in agent/, collector/ or common/, so the walk-through of an event stays true to the code."""
import os
import re
import sys

root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
doc = os.path.join(root, "docs", "architecture.md")
names = sorted(set(re.findall(r"`([a-z][a-z0-9]*_[a-z0-9_]+)`", open(doc).read())))

defined = set()
definition = re.compile(r"^[A-Za-z][^;=]*?\b([a-z_][a-z0-9_]*)\(")  # definitions start at column 0
for side in ("agent", "collector", "common"):
    for dirpath, _, files in os.walk(os.path.join(root, side)):
        for f in files:
            if f.endswith(".c"):
                for line in open(os.path.join(dirpath, f), errors="replace"):
                    m = definition.match(line)
                    if m:
                        defined.add(m.group(1))

missing = [n for n in names if n not in defined]
for n in missing:
    print(f"docs/architecture.md names {n}, which no .c file of agent/, collector/ or common/ defines")
print(f"check-doc-functions: {len(names)} functions named, {len(missing)} missing")
sys.exit(1 if missing or not names else 0)
