#!/usr/bin/env bash
# Benchmarks on a real systemd node (systemd-nspawn), printing figures:
#  1. `taint-guard check` vs the shell equivalent (systemctl is-active;
#     is-enabled; swapon --show; grep swap /etc/fstab), both run inside the
#     node through nsenter, in the seed-incident state (hyperfine).
#  2. `taint-guard check` from the host over the bus with --host-root.
#  3. `taint-guard check --fix` on the seed incident (kubelet disabled and
#     stopped, swap on and in fstab): time from the command's start to
#     kubelet's ActiveEnterTimestamp, and whole-process wall time; median
#     of RUNS runs.
# Needs root, debootstrap, systemd-container, hyperfine. Uses
# $TG_ROOTFS_CACHE or target/tmp/rootfs-bookworm as the base rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The node stands in for a VM or bare metal, as in the tests: in a container
# taint-guard leaves swap to the host (tests/harness: VM_STAND_IN).
export TAINT_GUARD_ASSUME_VIRTUALIZATION=none
RUNS=${RUNS:-9}
fixtures=tests/fixtures/node
base=${TG_ROOTFS_CACHE:-target/tmp/rootfs-bookworm}
[ -x "$base/usr/lib/systemd/systemd" ] || {
  echo "no base rootfs at $base: run the test suite once (it builds it) or set TG_ROOTFS_CACHE" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 1; }

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/taint-guard
work=$PWD/target/tmp/bench-node
root=$work/root
rm -rf "$work"; mkdir -p "$work/bus"
cp -a "$base" "$root"
install -D -m644 $fixtures/kubelet.service "$root/usr/lib/systemd/system/kubelet.service"
install -D -m644 $fixtures/10-kubeadm.conf "$root/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
install -D -m755 $fixtures/kubelet "$root/usr/bin/kubelet"
install -D -m644 $fixtures/kubeadm-flags.env "$root/var/lib/kubelet/kubeadm-flags.env"
install -D -m644 $fixtures/config.yaml "$root/var/lib/kubelet/config.yaml"
install -D -m755 "$bin" "$root/usr/local/bin/taint-guard"
mkdir -p "$root/etc/taint-guard"
cp $fixtures/fstab "$root/etc/fstab"

setsid timeout -k 20 1800 systemd-nspawn -q --keep-unit --register=no -b -D "$root" \
  --bind="$work/bus:/run/dbus" --system-call-filter=@swap --machine=tg-bench >"$work/nspawn.log" 2>&1 </dev/null &
tpid=$!
addr="unix:path=$work/bus/system_bus_socket"
cleanup() {
  swapoff "$root/swapfile" 2>/dev/null || true
  kill "$tpid" 2>/dev/null || true; wait "$tpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 600); do
  busctl --address="$addr" get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager SystemState 2>/dev/null | grep -qE 'running|degraded' && break
  sleep 0.05
done
first_child() { awk '{print $1}' "/proc/$1/task/$1/children"; }
nspawn=$(first_child "$tpid")
leader=$(first_child "$nspawn")
in_node() { env -u DBUS_SYSTEM_BUS_ADDRESS nsenter -t "$leader" -a "$@"; }
in_node sh -c 'dd if=/dev/zero of=/swapfile bs=1M count=64 status=none && chmod 600 /swapfile && mkswap /swapfile >/dev/null'

seed() {
  in_node sh -c 'systemctl disable --now kubelet.service 2>/dev/null; systemctl reset-failed kubelet.service 2>/dev/null; swapon /swapfile 2>/dev/null; true'
  cp $fixtures/fstab "$root/etc/fstab"
  rm -f "$root"/etc/fstab.taint-guard.*
}
seed

echo "== 1. check vs shell equivalent, inside the node (seed-incident state)"
hyperfine -N -i --warmup 10 --runs 300 --export-json "$work/h1.json" \
  -n "taint-guard check" "nsenter -t $leader -a /usr/local/bin/taint-guard check" \
  -n "shell equivalent" "nsenter -t $leader -a sh -c 'systemctl is-active kubelet; systemctl is-enabled kubelet; swapon --show; grep swap /etc/fstab'" \
  -n "nsenter baseline" "nsenter -t $leader -a true"

echo "== 2. check from the host over the bus (--host-root)"
DBUS_SYSTEM_BUS_ADDRESS=$addr hyperfine -N -i --warmup 10 --runs 300 --export-json "$work/h2.json" \
  -n "taint-guard check --host-root" "$bin --host-root $root --config /dev/null check"

medians() {
  python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("  median %-28s %6.1f ms" % (r["command"], r["median"] * 1000))' "$1"
}
medians "$work/h1.json"; medians "$work/h2.json"
# benches/run's table: one row per figure, `what|ours|baseline|ratio|goal`.
row() { [ -z "${TG_BENCH_ROWS:-}" ] || printf '%s\n' "$*" >>"$TG_BENCH_ROWS"; }
read -r c_ms s_ms f_ms < <(python3 -c 'import json,sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print("%.2f %.2f %.2f" % (r["taint-guard check"], r["shell equivalent"], r["nsenter baseline"]))' "$work/h1.json")
row "\`check\` whole process, inside the node (median of 300, 10 warm-up)|$c_ms ms|shell equivalent $s_ms ms|$(awk -v a="$c_ms" -v b="$s_ms" 'BEGIN {printf "%.2f", a / b}')×|≤ 0.22× (floor, nsenter of \`true\`: $f_ms ms = $(awk -v a="$f_ms" -v b="$s_ms" 'BEGIN {printf "%.2f", a / b}')×)"

echo "== 3. check --fix on the seed incident: command start -> kubelet active ($RUNS runs, settle_secs=3)"
to_active=(); wall=()
for i in $(seq "$RUNS"); do
  seed
  t0=$(date +%s%6N)
  code=0; in_node /usr/local/bin/taint-guard check --fix >"$work/fix.out" 2>&1 || code=$?
  t1=$(date +%s%6N)
  [ "$code" = 0 ] || { echo "run $i: exit $code" >&2; cat "$work/fix.out" >&2; exit 1; }
  ae=$(busctl --address="$addr" get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/kubelet_2eservice \
        org.freedesktop.systemd1.Unit ActiveEnterTimestamp | awk '{print $2}')
  to_active+=($(( (ae - t0) / 1000 ))); wall+=($(( (t1 - t0) / 1000 )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "command start -> kubelet active (ms): ${to_active[*]}  median $(median "${to_active[@]}")"
echo "whole process incl. 3 s settle (ms):  ${wall[*]}  median $(median "${wall[@]}")"

# The baseline: the incident report's remedy typed as one shell line (what a
# person pastes once they know what is wrong), timed the same way.
echo "== 3b. the same by hand: swapoff; comment the fstab line; systemctl enable --now kubelet ($RUNS runs)"
by_hand=()
for i in $(seq "$RUNS"); do
  seed
  t0=$(date +%s%6N)
  in_node sh -c "swapoff -a && sed -i '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/#/' /etc/fstab && systemctl enable --now kubelet" >/dev/null 2>&1
  ae=$(busctl --address="$addr" get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/kubelet_2eservice \
        org.freedesktop.systemd1.Unit ActiveEnterTimestamp | awk '{print $2}')
  by_hand+=($(( (ae - t0) / 1000 )))
done
echo "by hand, command start -> kubelet active (ms): ${by_hand[*]}  median $(median "${by_hand[@]}")"
m1=$(median "${to_active[@]}"); m2=$(median "${by_hand[@]}")
row "\`check --fix\` on the seed incident: command start → kubelet active (median of $RUNS)|$m1 ms|the remedy typed by hand $m2 ms|$(awk -v a="$m1" -v b="$m2" 'BEGIN {printf "%.2f", a / b}')×|—"
