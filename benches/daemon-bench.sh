#!/usr/bin/env bash
# Benchmarks of `taint-guard run` on a real systemd node (systemd-nspawn),
# the daemon on the host talking to the node's bus. Prints a table of
# figures (not timed assertions):
#  1. detection latency: kubelet stops (systemd's InactiveEnterTimestamp) ->
#     the finding is in /metrics (polled over one keep-alive connection
#     every 0.5 ms); p50/p99 over CYCLES cycles (default 60);
#  2. repair latency: kubelet stops -> active again (ActiveEnterTimestamp),
#     start_grace_secs = 0, start_stopped = true; REPAIRS cycles (default 20);
#  3. idle, 60 s with nothing happening: RSS, CPU seconds, voluntary
#     context switches of every thread of the daemon.
# Baselines in the same run: detection by a 10 s poll of `systemctl
# is-active` (POLL_CYCLES, 50), and systemd's own Restart= (RestartSec=10,
# kubeadm's unit) after a SIGKILL (RESTART_CYCLES, 5).
# Needs root, debootstrap, systemd-container, python3. Uses $TG_ROOTFS_CACHE
# or target/tmp/rootfs-bookworm as the base rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The node stands in for a VM or bare metal, as in the tests: in a container
# taint-guard leaves swap to the host (tests/harness: VM_STAND_IN).
export TAINT_GUARD_ASSUME_VIRTUALIZATION=none
CYCLES=${CYCLES:-60}
REPAIRS=${REPAIRS:-20}
IDLE=${IDLE:-60}
POLL_CYCLES=${POLL_CYCLES:-50}
RESTART_CYCLES=${RESTART_CYCLES:-5}
fixtures=tests/fixtures/node
base=${TG_ROOTFS_CACHE:-target/tmp/rootfs-bookworm}
[ -x "$base/usr/lib/systemd/systemd" ] || {
  echo "no base rootfs at $base: run the test suite once (it builds it) or set TG_ROOTFS_CACHE" >&2; exit 1; }

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/taint-guard
work=$PWD/target/tmp/bench-daemon
root=$work/root
rm -rf "$work"; mkdir -p "$work/bus"
cp -a "$base" "$root"
install -D -m644 $fixtures/kubelet.service "$root/usr/lib/systemd/system/kubelet.service"
install -D -m644 $fixtures/10-kubeadm.conf "$root/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
install -D -m755 $fixtures/kubelet "$root/usr/bin/kubelet"
install -D -m644 $fixtures/kubeadm-flags.env "$root/var/lib/kubelet/kubeadm-flags.env"
install -D -m644 $fixtures/config.yaml "$root/var/lib/kubelet/config.yaml"

setsid timeout -k 20 3600 systemd-nspawn -q --keep-unit --register=no -b -D "$root" \
  --bind="$work/bus:/run/dbus" --system-call-filter=@swap --machine=tg-dbench >"$work/nspawn.log" 2>&1 </dev/null &
tpid=$!
addr="unix:path=$work/bus/system_bus_socket"
dpid=
cleanup() {
  [ -z "$dpid" ] || { kill "$dpid" 2>/dev/null || true; wait "$dpid" 2>/dev/null || true; }
  cp "$work/daemon.log" "${TMPDIR:-/tmp}/taint-guard-daemon-bench.log" 2>/dev/null || true
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
in_node systemctl enable --now kubelet.service >/dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_daemon() { # $1: extra [run] lines
  [ -z "$dpid" ] || { kill "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=; }
  printf '[run]\nreport = false\nresync_secs = 3600\n%b\n' "$1" >"$work/config.toml"
  DBUS_SYSTEM_BUS_ADDRESS=$addr "$bin" --host-root "$root" --config "$work/config.toml" run \
    >"$work/daemon.log" 2>&1 </dev/null &
  dpid=$!
  for _ in $(seq 200); do
    if [ -z "$2" ]; then sleep 0.5; return; fi
    python3 - "$port" <<'EOF' 2>/dev/null && return
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=1)
c.request("GET", "/metrics"); sys.exit(0 if b"taint_guard_evaluations_total" in c.getresponse().read() else 1)
EOF
    sleep 0.05
  done
}

# The measuring loop, in Python: one keep-alive connection to /metrics.
measure() { # $1: detect|repair  $2: cycles
  python3 - "$1" "$2" "$port" "$leader" "$addr" <<'EOF'
import http.client, subprocess, sys, time
mode, n, port, leader, addr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
def metrics():
    c.request("GET", "/metrics"); return c.getresponse().read().decode()
def node(*cmd):
    subprocess.run(["nsenter", "-t", leader, "-a", *cmd], check=True,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdout=subprocess.DEVNULL)
def ts(prop):
    o = subprocess.run(["busctl", f"--address={addr}", "get-property", "org.freedesktop.systemd1",
                        "/org/freedesktop/systemd1/unit/kubelet_2eservice", "org.freedesktop.systemd1.Unit", prop],
                       check=True, capture_output=True, text=True).stdout
    return int(o.split()[1]) / 1e6
def wait(cond, what):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > 30: sys.exit(f"timed out waiting for {what}")
        time.sleep(0.0005)
    return time.time()
found = 'taint_guard_findings{id="unit-stopped"'
out = []
for i in range(n):
    if mode == "detect":
        node("systemctl", "start", "kubelet.service")
        wait(lambda: 'taint_guard_status{status="ok"} 1' in metrics(), "ok")
        p = subprocess.Popen(["nsenter", "-t", leader, "-a", "systemctl", "stop", "kubelet.service"])
        seen = wait(lambda: found in metrics(), "the finding")
        p.wait()
        out.append((seen - ts("InactiveEnterTimestamp")) * 1000)
    else:
        wait(lambda: ts("ActiveEnterTimestamp") > ts("InactiveEnterTimestamp"), "active")
        time.sleep(1.2)  # past the 1 s repair backoff of the previous cycle
        node("systemctl", "stop", "kubelet.service")
        wait(lambda: ts("ActiveEnterTimestamp") > ts("InactiveEnterTimestamp"), "active again")
        out.append((ts("ActiveEnterTimestamp") - ts("InactiveEnterTimestamp")) * 1000)
out.sort()
pct = lambda p: out[min(len(out) - 1, int(round(p / 100 * (len(out) - 1))))]
print(f"{pct(50):.1f} {pct(99):.1f} {out[0]:.1f} {out[-1]:.1f} {len(out)}")
EOF
}

echo "detection: $CYCLES cycles" >&2
start_daemon "remediate = false\nmetrics_listen = \"127.0.0.1:$port\"" wait
read -r d50 d99 dmin dmax dn < <(measure detect "$CYCLES")

echo "repair: $REPAIRS cycles" >&2
start_daemon "start_stopped = true\nstart_grace_secs = 0\nrepair_backoff_secs = 1\nmetrics_listen = \"127.0.0.1:$port\"" wait
read -r r50 r99 rmin rmax rn < <(measure repair "$REPAIRS")

# Baselines, measured here too, with the daemon stopped.
[ -z "$dpid" ] || { kill "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=; }
in_node systemctl start kubelet.service
echo "baseline, a 10 s poll (node-problem-detector's kubelet health check): $POLL_CYCLES cycles" >&2
read -r p50 p99 pmin pmax pn < <(python3 - "$POLL_CYCLES" "$leader" "$addr" <<'EOF'
import random, subprocess, sys, threading, time
n, leader, addr = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def node(*cmd):
    return subprocess.run(["nsenter", "-t", leader, "-a", *cmd], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                          capture_output=True, text=True).stdout.strip()
def ts(prop):
    o = subprocess.run(["busctl", f"--address={addr}", "get-property", "org.freedesktop.systemd1",
                        "/org/freedesktop/systemd1/unit/kubelet_2eservice", "org.freedesktop.systemd1.Unit", prop],
                       check=True, capture_output=True, text=True).stdout
    return int(o.split()[1]) / 1e6
seen = []
def poller():  # `systemctl is-active kubelet` every 10 s, as a poll-based checker does
    while True:
        t = time.time()
        if node("systemctl", "is-active", "kubelet.service") != "active":
            seen.append(time.time())
        time.sleep(max(0.0, 10 - (time.time() - t)))
threading.Thread(target=poller, daemon=True).start()
out = []
for i in range(n):
    node("systemctl", "start", "kubelet.service")
    time.sleep(random.uniform(0, 10))
    node("systemctl", "stop", "kubelet.service")
    down = ts("InactiveEnterTimestamp")
    # The first poll that saw it down (one may land between the stop and
    # this line: it counts).
    while not any(s >= down for s in seen):
        time.sleep(0.01)
    out.append((min(s for s in seen if s >= down) - down) * 1000)
node("systemctl", "start", "kubelet.service")
out.sort()
pct = lambda p: out[min(len(out) - 1, int(round(p / 100 * (len(out) - 1))))]
print(f"{pct(50):.0f} {pct(99):.0f} {out[0]:.0f} {out[-1]:.0f} {len(out)}")
EOF
)
echo "baseline, systemd's own Restart= (kubeadm's unit: Restart=always, RestartSec=10): $RESTART_CYCLES crashes" >&2
read -r b50 bmax bn < <(python3 - "$RESTART_CYCLES" "$leader" "$addr" <<'EOF'
import subprocess, sys, time
n, leader, addr = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def prop(p, iface="org.freedesktop.systemd1.Unit"):
    o = subprocess.run(["busctl", f"--address={addr}", "get-property", "org.freedesktop.systemd1",
                        "/org/freedesktop/systemd1/unit/kubelet_2eservice", iface, p],
                       check=True, capture_output=True, text=True).stdout
    return int(o.split()[1])
out = []
for i in range(n):
    while prop("ActiveEnterTimestamp") <= prop("InactiveEnterTimestamp") or prop("MainPID", "org.freedesktop.systemd1.Service") == 0:
        time.sleep(0.05)
    before = prop("ActiveEnterTimestamp")
    killed = time.time()
    subprocess.run(["nsenter", "-t", leader, "-a", "systemctl", "kill", "-s", "KILL", "kubelet.service"], check=True)
    # From the kill, not InactiveEnterTimestamp: systemd < 254 moves the unit
    # through "dead" again right before the restart, resetting that stamp.
    while prop("ActiveEnterTimestamp") == before:
        if time.time() - killed > 60: sys.exit("kubelet not restarted by systemd within 60 s")
        time.sleep(0.05)
    out.append((prop("ActiveEnterTimestamp") / 1e6 - killed) * 1000)
out.sort()
print(f"{out[len(out) // 2]:.0f} {out[-1]:.0f} {len(out)}")
EOF
)

echo "idle: ${IDLE} s" >&2
in_node systemctl start kubelet.service
start_daemon "" ""
sleep 3
snap() { # rss_kib cpu_ticks; per-thread voluntary switches into $1
  local rss cpu
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$dpid/status)
  cpu=$(awk '{print $14 + $15}' /proc/$dpid/stat)
  for t in /proc/$dpid/task/*; do
    echo "${t##*/} $(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")"
  done >"$1"
  echo "$rss $cpu"
}
# Snapshots outside the config's directory, which the daemon watches.
snaps=$(mktemp -d)
read -r _ c0 < <(snap "$snaps/vol0")
sleep "$IDLE"
read -r rss c1 < <(snap "$snaps/vol1")
# Switches of the threads alive at both ends (tokio's blocking-pool thread,
# idle since start, exits after 10 s and takes its count with it).
switches=$(awk 'NR == FNR {a[$1] = $2; next} ($1 in a) {s += $2 - a[$1]} END {print s + 0}' "$snaps/vol0" "$snaps/vol1")
rm -rf "$snaps"
v0=0; v1=$switches
threads=$(cat /proc/$dpid/task/*/comm | tr '\n' ' ')
anon=$(awk '/^Rss_Anon|^Anonymous/ {print $2; exit}' /proc/$dpid/smaps_rollup)
hz=$(getconf CLK_TCK)

printf '\n| what | measured | goal |\n|---|---|---|\n'
printf '| detection latency (unit stop -> finding in /metrics), %s cycles | p50 %s ms, p99 %s ms (min %s, max %s) | p99 <= 25 ms |\n' "$dn" "$d50" "$d99" "$dmin" "$dmax"
printf '| repair latency (stop -> active, grace 0), %s cycles | p50 %s ms, p99 %s ms (min %s, max %s) | - |\n' "$rn" "$r50" "$r99" "$rmin" "$rmax"
printf '| idle RSS (of which anonymous) | %s MiB (%s MiB) | <= 10 MiB |\n' "$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')" "$(awk -v k="$anon" 'BEGIN {printf "%.1f", k / 1024}')"
printf '| idle CPU over %s s | %s s | - |\n' "$IDLE" "$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')"
printf '| voluntary context switches over %s s idle (threads: %s) | %s | 0 between timers |\n' "$IDLE" "$threads" "$((v1 - v0))"
printf '| baseline: detection by a 10 s poll, %s cycles | p50 %s ms, p99 %s ms (min %s, max %s) | - |\n' "$pn" "$p50" "$p99" "$pmin" "$pmax"
printf "| baseline: systemd's Restart= after a crash (RestartSec=10), %s crashes | median %s ms (max %s) | - |\n" "$bn" "$b50" "$bmax"

# benches/run's table: one row per figure, `what|ours|baseline|ratio|goal`.
row() { [ -z "${TG_BENCH_ROWS:-}" ] || printf '%s\n' "$*" >>"$TG_BENCH_ROWS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f×", a / b}'; }
row "daemon: detection, kubelet stop → finding in /metrics ($dn cycles)|p50 $d50 ms, p99 $d99 ms|10 s poll: p50 $p50 ms, p99 $p99 ms ($pn cycles)|p99 $(ratio "$d99" "$p99")|p99 ≤ 25 ms"
row "daemon: repair, kubelet stop → active again, grace 0 ($rn cycles)|p50 $r50 ms, p99 $r99 ms|systemd Restart= (RestartSec=10): median $b50 ms ($bn crashes)|p50 $(ratio "$r50" "$b50")|—"
row "daemon idle ${IDLE} s: RSS (anonymous)|$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}') MiB ($(awk -v k="$anon" 'BEGIN {printf "%.1f", k / 1024}') MiB)|—|—|≤ 10 MiB"
row "daemon idle ${IDLE} s: CPU, voluntary context switches|$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') s, $((v1 - v0))|—|—|0 switches between timers"
