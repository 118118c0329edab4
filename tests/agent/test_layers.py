"""The agent's layers depend one way: ptrace (process control) -> server (RSP packets) -> transport
(TCP/TLS) -> main.c. Checks every quoted include of agent/ against that order, that no two modules
(foo.c + foo.h) include each other's headers even indirectly, that only the transport includes libuv or
mbedtls, and that every file opens with a comment saying what it is for."""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
AGENT = os.path.join(SRC, "agent")
COMMON = os.path.join(SRC, "common")
LAYERS = ["ptrace", "server", "transport", ""]  # "" is agent/ itself (main.c)
GENERATED = {"version.h"}  # common/'s build writes it from version.h.in
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)

errors = []


def layer_of(path):
    rel = os.path.relpath(path, AGENT)
    return LAYERS.index(os.path.dirname(rel))


files = {}  # basename -> path
for layer in LAYERS:
    d = os.path.join(AGENT, layer)
    for name in sorted(os.listdir(d)):
        if name.endswith((".c", ".h")):
            if name in files:
                errors.append("%s exists twice (includes stay unambiguous only with unique names)" % name)
            files[name] = os.path.join(d, name)
if len(files) < 10:
    errors.append("only %d agent files found under %s" % (len(files), AGENT))

common = set(os.listdir(COMMON)) | GENERATED
module_edges = {}  # module -> modules whose headers it includes
for name, path in sorted(files.items()):
    text = open(path).read()
    rel = os.path.relpath(path, SRC)
    if not text.startswith("/*"):
        errors.append("%s does not open with a comment on its job" % rel)
    me = os.path.splitext(name)[0]
    mine = layer_of(path)
    for kind, inc in INCLUDE.findall(text):
        if kind == "<":
            if (inc == "uv.h" or inc.startswith("mbedtls/")) and LAYERS[mine] != "transport":
                errors.append("%s includes <%s>: only the transport may" % (rel, inc))
            continue
        base = os.path.basename(inc)
        if base in files:
            theirs = layer_of(files[base])
            if theirs > mine:
                errors.append("%s (layer %s) includes %s from the higher layer %s"
                              % (rel, LAYERS[mine] or "main", inc, LAYERS[theirs] or "main"))
            other = os.path.splitext(base)[0]
            if other != me:
                module_edges.setdefault(me, set()).add(other)
        elif base not in common:
            errors.append("%s includes \"%s\", which is neither an agent nor a common header" % (rel, inc))

# A cycle between modules, direct or through others, means they are one module in two halves.
state = {}


def visit(m, stack):
    state[m] = 1
    for n in sorted(module_edges.get(m, ())):
        if state.get(n) == 1:
            errors.append("include cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
        elif n not in state:
            visit(n, stack + [n])
    state[m] = 2


for m in sorted(module_edges):
    if m not in state:
        visit(m, [m])

for e in errors:
    print("FAIL: " + e)
if errors:
    sys.exit(1)
print("ok: %d agent files, %d module dependencies, layers ptrace -> server -> transport -> main, no cycles"
      % (len(files), sum(len(v) for v in module_edges.values())))
