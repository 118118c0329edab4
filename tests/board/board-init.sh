#!/bin/busybox sh
# The emulated board's /init: mounts the kernel's file systems, loads virtio-net, brings up the network and starts rsprof-agent as /etc/rsprof/board.conf says (see scripts/board); then prints the agents' memory use to the console every two seconds.
set -euo pipefail
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null || true
mount -t tmpfs tmp /tmp
for m in failover net_failover virtio_net virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio-rng; do
  insmod "/lib/modules/$m.ko" || echo "rsprof-board: insmod $m failed"
done
n=0
while [ ! -e /sys/class/net/eth0 ]; do
  n=$((n + 1))
  if [ $n -gt 100 ]; then echo "rsprof-board: failed: no eth0"; exec sh; fi
  sleep 0.1
done
ip link set lo up
ip link set eth0 up
# QEMU's user-mode network: the board is 10.0.2.15, the host's forwarded ports arrive there.
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
hostname rsprof-board

main_tls=0 main_multi=0 main_attach=0 also_tls=0 also_attach=0 shell=0
set --
. /etc/rsprof/board.conf
if [ "$shell" = 1 ]; then
  echo "rsprof-board: shell (the fixtures are in /fx, the agent is /bin/rsprof-agent; poweroff -f ends the board)"
  exec setsid cttyhack sh -l
fi

tls_opts="--tls-cert /etc/rsprof/board.pem --tls-key /etc/rsprof/board.key --tls-ca /etc/rsprof/ca.pem"

# wait_port NAME FILE: waits for an agent's port file (it is written once the agent listens).
wait_port() {
  n=0
  while [ ! -s "$2" ]; do
    n=$((n + 1))
    if [ $n -gt 600 ]; then echo "rsprof-board: failed: agent $1 did not listen"; return 1; fi
    sleep 0.1
  done
  echo "rsprof-board: agent $1 listens on $(cat "$2")"
}

opts=""
[ "$main_tls" = 1 ] && opts="$tls_opts"
main_target=""
if [ "$main_attach" = 1 ]; then
  "$@" >/tmp/main-target.out 2>&1 &
  main_target=$!
  rsprof-agent --listen 0.0.0.0:9000 --port-file /tmp/main.port $opts --attach "$main_target" &
elif [ "$main_multi" = 1 ]; then
  rsprof-agent --listen 0.0.0.0:9000 --port-file /tmp/main.port $opts --multi ${1+-- "$@"} &
else
  rsprof-agent --listen 0.0.0.0:9000 --port-file /tmp/main.port $opts -- "$@" &
fi
main_pid=$!
wait_port main /tmp/main.port
tls_pid="" attach_pid="" attach_target=""
if [ "$also_tls" = 1 ]; then
  rsprof-agent --listen 0.0.0.0:9001 --port-file /tmp/tls.port $tls_opts --multi &
  tls_pid=$!
  wait_port tls /tmp/tls.port
fi
if [ "$also_attach" = 1 ]; then
  /fx/fx-fault-ticks 1000000 20000 >/tmp/attach-target.out 2>&1 &
  attach_target=$!
  rsprof-agent --listen 0.0.0.0:9002 --port-file /tmp/attach.port --attach "$attach_target" &
  attach_pid=$!
  wait_port attach /tmp/attach.port
fi
echo "rsprof-board: ready (main agent pid $main_pid)"

# mem NAME PID: the agent's peak and current resident memory, from /proc/PID/status.
mem() {
  [ -n "$2" ] && [ -r "/proc/$2/status" ] || return 0
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$2/status")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$2/status")
  echo "board-status: agent $1 pid=$2 VmHWM=${hwm}kB VmRSS=${rss}kB"
}
# proc_state NAME PID: a traced-or-not program's state and tracer.
proc_state() {
  [ -n "$2" ] && [ -r "/proc/$2/status" ] || return 0
  st=$(awk '/^State:/ {print $2}' "/proc/$2/status")
  tr=$(awk '/^TracerPid:/ {print $2}' "/proc/$2/status")
  echo "board-status: program $1 pid=$2 state=$st tracer=$tr"
}
while true; do
  mem main "$main_pid"
  mem tls "$tls_pid"
  mem attach "$attach_pid"
  proc_state attach-target "$attach_target"
  # The killed-program check: fx-alloc-kill dies of SIGKILL once it has run half a second of CPU time.
  for pid in $(pidof fx-alloc-kill || true); do
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    if [ "${ticks:-0}" -ge 50 ]; then
      kill -KILL "$pid" && echo "board-status: killed fx-alloc-kill pid=$pid after $ticks ticks"
    fi
  done
  sleep 2
done
