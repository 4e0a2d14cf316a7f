#!/usr/bin/env bash
# Whole-process benchmarks for docs/performance.md: nslab against the same
# work done by hand (unshare + nsenter) and with bubblewrap, --jobs scaling,
# and a generated suite of up to 1000 scenarios.
#
# Needs root, hyperfine, bubblewrap and util-linux; run on an idle machine:
#   cargo build --release && bash benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NSLAB=${NSLAB:-$PWD/target/release/nslab}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for c in hyperfine bwrap unshare nsenter; do
  command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done

# 1. 30 `run: "true"` steps in a five-namespace sandbox, by nslab, by hand
#    (unshare + nsenter per command) and with bubblewrap; then 0 and 60
#    commands each, so that the cost per command is the slope, apart from
#    the fixed cost of starting; and the floor: hyperfine starting /bin/true.
steps_yaml() {
  printf 'name: bench%s\nsandboxes:\n  box:\n    namespaces: [net, pid, uts, ipc, mount]\nsteps:\n  - { probe: pid, in: box }\n' "$1"
  for _ in $(seq "$1"); do printf '  - { run: "true", in: box }\n'; done
}
shell_script() {
  cat <<SH
#!/bin/sh
# The same work by hand: a five-namespace sandbox, then $1 commands in it.
unshare --fork --pid --mount-proc --net --uts --ipc --mount sleep 1000 &
U=\$!
until P=\$(cat /proc/\$U/task/\$U/children 2>/dev/null) && [ -n "\$P" ]; do sleep 0.001; done
for i in \$(seq $1); do nsenter -t "\$P" -n -p -u -i -m true; done
kill -9 "\$P"; wait 2>/dev/null || true
SH
}
for n in 0 30 60; do
  steps_yaml "$n" > "$W/nslab$n.yaml"
  shell_script "$n" > "$W/shell$n.sh"
done
cat > "$W/bwrap30.sh" <<'SH'
#!/bin/sh
# bubblewrap has no long-lived sandbox to enter: one sandbox per command.
for i in $(seq 30); do bwrap --dev-bind / / --unshare-net --unshare-pid --unshare-uts --unshare-ipc --proc /proc true; done
SH
chmod +x "$W"/*.sh
echo "## 30 commands in a five-namespace sandbox"
hyperfine -N --warmup 3 --runs 30 --export-markdown "$W/t1.md" --export-json "$W/t1.json" \
  -n nslab "$NSLAB run $W/nslab30.yaml --jobs 1 --report $W/r.json" \
  -n "unshare+nsenter" "$W/shell30.sh" \
  -n bubblewrap "$W/bwrap30.sh" \
  -n "nslab, 0 commands" "$NSLAB run $W/nslab0.yaml --jobs 1 --report $W/r.json" \
  -n "nslab, 60 commands" "$NSLAB run $W/nslab60.yaml --jobs 1 --report $W/r.json" \
  -n "unshare+nsenter, 0 commands" "$W/shell0.sh" \
  -n "unshare+nsenter, 60 commands" "$W/shell60.sh" \
  -n "floor: start /bin/true" "/bin/true" >/dev/null
cat "$W/t1.md"
python3 - "$W/t1.json" <<'PY'
import json, statistics, sys
m = {r["command"]: statistics.median(r["times"]) * 1e3 for r in json.load(open(sys.argv[1]))["results"]}
nslab, shell, floor = m["nslab"], m["unshare+nsenter"], m["floor: start /bin/true"]
per_n = (m["nslab, 60 commands"] - m["nslab, 0 commands"]) / 60
per_s = (m["unshare+nsenter, 60 commands"] - m["unshare+nsenter, 0 commands"]) / 60
print(f"\nmedians: nslab {nslab:.1f} ms, unshare+nsenter {shell:.1f} ms: ratio {nslab / shell:.2f} (target 0.5)")
print(f"per command (slope from 0 to 60): nslab {per_n:.3f} ms, unshare+nsenter {per_s:.3f} ms: ratio {per_n / per_s:.2f}")
print(f"fixed cost (0 commands): nslab {m['nslab, 0 commands']:.1f} ms, unshare+nsenter {m['unshare+nsenter, 0 commands']:.1f} ms")
print(f"floor: starting /bin/true {floor:.3f} ms; 30 of them alone are {30 * floor / shell:.2f} of the script's time")
PY

# 2. One lab, one five-namespace sandbox, one probe: the fixed cost.
printf 'name: lab\nsandboxes:\n  box:\n    namespaces: [net, pid, uts, ipc, mount]\nsteps:\n  - { probe: pid, in: box }\n' > "$W/lab.yaml"
echo; echo "## A lab with a five-namespace sandbox and one probe, whole process"
hyperfine -N --warmup 3 --runs 50 --export-markdown "$W/t2.md" \
  -n nslab "$NSLAB run $W/lab.yaml --jobs 1 --report $W/r.json" \
  -n "unshare (7 namespaces) true" "unshare --fork --user --map-root-user --pid --mount-proc --net --uts --ipc --mount --cgroup true" \
  -n "bubblewrap (6 namespaces) true" "bwrap --dev-bind / / --unshare-all --proc /proc true" >/dev/null
cat "$W/t2.md"

# 2b. The bundled scenarios, as a student or CI runs them.
echo; echo "## The bundled suite (scenarios/), whole process"
hyperfine -N --warmup 1 --runs 10 --export-markdown "$W/t2b.md" \
  -n "jobs=1" "$NSLAB run scenarios/ --jobs 1 --report $W/r.json" \
  -n "jobs=2" "$NSLAB run scenarios/ --jobs 2 --report $W/r.json" >/dev/null
cat "$W/t2b.md"

# 3. --jobs: 40 scenarios on this machine's CPUs.
mkdir -p "$W/forty"
for i in $(seq 40); do
  printf 'name: s%02d\nsandboxes:\n  box:\n    namespaces: [uts, pid, net]\n    hostname: box\nsteps:\n' "$i" > "$W/forty/s$i.yaml"
  for _ in $(seq 10); do printf '  - { run: "hostname", in: box }\n' >> "$W/forty/s$i.yaml"; done
done
echo; echo "## 40 scenarios, --jobs 1 against --jobs 2"
hyperfine -N --warmup 1 --runs 10 --export-markdown "$W/t3.md" \
  -n "jobs=1" "$NSLAB run $W/forty --jobs 1 --report $W/r.json" \
  -n "jobs=2" "$NSLAB run $W/forty --jobs 2 --report $W/r.json" >/dev/null
cat "$W/t3.md"

# 4. A generated suite of 250, 500 and 1000 scenarios: time and memory.
echo; echo "## Generated suites"
echo "| scenarios | wall s | per scenario ms | runner peak RSS MiB | net_namespace slab objects after |"
echo "| --- | --- | --- | --- | --- |"
for n in 250 500 1000; do
  rm -rf "$W/many"; mkdir -p "$W/many"
  for i in $(seq "$n"); do
    printf 'name: g%04d\nsandboxes:\n  box:\n    namespaces: [net, pid, uts]\nsteps:\n  - { probe: hostname, in: [host, box] }\n  - { run: "echo %s", in: box, expect: { stdout: "%s" } }\n' "$i" "$i" "$i" > "$W/many/g$i.yaml"
  done
  t0=$(date +%s.%N)
  "$NSLAB" run "$W/many" --report "$W/many.json" >/dev/null
  t1=$(date +%s.%N)
  python3 - "$W/many.json" "$t0" "$t1" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2]); n = int(sys.argv[4])
slab = next((l.split()[1] for l in open('/proc/slabinfo') if l.startswith('net_namespace')), '?')
assert r['summary']['passed'] == n, r['summary']
print(f"| {n} | {wall:.2f} | {wall / n * 1000:.2f} | {r['resources']['runner_peak_rss_kib'] / 1024:.1f} | {slab} |")
PY
done
