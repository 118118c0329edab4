#!/bin/bash
# Cross-builds rsprof-agent for aarch64 (static, with TLS) and the common/ unit tests, then runs
# the unit tests and a protocol smoke test of the agent under qemu-aarch64 user mode.
# Usage: run-cross.sh SOURCE_DIR WORK_DIR. Exit 77 (skipped) when the cross compiler or QEMU is missing.
set -euo pipefail
src=$1
work=$2
cc=aarch64-linux-gnu-gcc
if ! command -v "$cc" >/dev/null; then
  echo "SKIP: $cc is not installed (Debian package gcc-aarch64-linux-gnu)"
  exit 77
fi
mkdir -p "$work"
uv_static=/usr/lib/aarch64-linux-gnu/libuv_a.a
extra=()
# Debian ships the static libuv as libuv_a.a, which a plain find_library(uv) does not pick up.
[ -f "$uv_static" ] && extra+=("-DUV_LIBRARY=$uv_static")
cmake -S "$src" -B "$work/build" -DCMAKE_TOOLCHAIN_FILE="$src/deploy/toolchain-aarch64.cmake" \
  -DRSPROF_STATIC=ON -DRSPROF_BUILD_COLLECTOR=OFF -DRSPROF_BUILD_TESTS=OFF -DRSPROF_WERROR=ON \
  -DCMAKE_BUILD_TYPE=MinSizeRel "${extra[@]}" >"$work/configure.log"
cmake --build "$work/build" --target rsprof-agent -j2 >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
agent=$work/build/agent/rsprof-agent
file "$agent" | grep -q 'ARM aarch64.*statically linked' || { echo "FAIL: not a static aarch64 binary"; file "$agent"; exit 1; }
echo "ok: static aarch64 agent built ($(stat -c %s "$agent") bytes unstripped)"

# The arch-table unit tests, linked statically for aarch64.
"$cc" -std=gnu11 -O1 -static -Wall -Wextra -Werror -D_GNU_SOURCE -I"$src/common" -I"$work/build/common" \
  -I"$src/tests/harness" "$src"/common/*.c "$src/tests/unit/test-common.c" "$src/tests/harness/test-main.c" \
  -o "$work/test-common"
# The step-over emulation's unit tests (pure code: no ptrace needed, so QEMU can run them).
"$cc" -std=gnu11 -O1 -static -Wall -Wextra -Werror -D_GNU_SOURCE -I"$src/common" -I"$work/build/common" \
  -I"$src/agent/ptrace" -I"$src/tests/harness" "$src"/common/*.c "$src/agent/ptrace/ptrace-aarch64.c" \
  "$src/tests/agent/test-emulate-aarch64.c" "$src/tests/harness/test-main.c" -o "$work/test-emulate"
echo "ok: unit tests built for aarch64"

if ! command -v qemu-aarch64 >/dev/null; then
  echo "SKIP: qemu-aarch64 is not installed (Debian package qemu-user); built but not run"
  exit 77
fi
names=$(qemu-aarch64 "$work/test-common" --list)
[ -n "$names" ] || { echo "FAIL: no unit tests listed"; exit 1; }
n=0
for t in $names; do
  qemu-aarch64 "$work/test-common" "$t" >/dev/null 2>&1 || { echo "FAIL: unit test $t under qemu-aarch64"; exit 1; }
  n=$((n + 1))
done
echo "ok: $n arch-table unit tests pass under qemu-aarch64"
n=0
for t in $(qemu-aarch64 "$work/test-emulate" --list); do
  qemu-aarch64 "$work/test-emulate" "$t" >/dev/null 2>&1 || { echo "FAIL: emulation test $t under qemu-aarch64"; exit 1; }
  n=$((n + 1))
done
[ "$n" -ge 4 ] || { echo "FAIL: only $n emulation tests found"; exit 1; }
echo "ok: $n aarch64 step-over emulation tests pass under qemu-aarch64"

qemu-aarch64 "$agent" --version | grep -q rsprof-agent
echo "ok: the aarch64 agent runs under qemu-aarch64"
# Protocol smoke test: QEMU user mode cannot ptrace, but the server side (TLS-free) answers.
python3 - "$agent" "$work" <<'PY'
import os, socket, subprocess, sys, time
agent, work = sys.argv[1], sys.argv[2]
pf = os.path.join(work, "port")
if os.path.exists(pf):
    os.unlink(pf)
p = subprocess.Popen(["qemu-aarch64", agent, "--listen", "127.0.0.1:0", "--port-file", pf, "--multi", "--once"],
                     stderr=subprocess.PIPE)
deadline = time.time() + 30
while not os.path.exists(pf):
    if time.time() > deadline or p.poll() is not None:
        print("FAIL: agent under qemu did not listen"); p.kill(); sys.exit(1)
    time.sleep(0.05)
port = int(open(pf).read())
s = socket.create_connection(("127.0.0.1", port), timeout=20)
def cmd(payload):
    s.sendall(b"$%s#%02x" % (payload, sum(payload) & 0xff))
    data = b""
    while True:
        data += s.recv(65536)
        i = data.find(b"$")
        j = data.find(b"#", i)
        if i >= 0 and j >= 0 and len(data) >= j + 3:
            s.sendall(b"+")
            return data[i + 1:j]
sup = cmd(b"qSupported:multiprocess+;swbreak+")
xml = b""
while True:
    r = cmd(b"qXfer:features:read:target.xml:%x,fff" % len(xml))
    xml += r[1:]
    if r[:1] == b"l":
        break
s.close()
p.wait(timeout=20)
ok = b"PacketSize" in sup and b"<architecture>aarch64</architecture>" in xml and b'name="pc"' in xml
print(("ok" if ok else "FAIL") + ": the aarch64 agent serves qSupported and an aarch64 target.xml")
sys.exit(0 if ok else 1)
PY
