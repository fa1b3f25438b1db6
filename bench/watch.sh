#!/usr/bin/env bash
# Watch-mode latency: from a file write to the start of the affected step, over 20 edits,
# with the default debounce (100 ms). Target: median under debounce + 30 ms.
#
#   bench/watch.sh            (builds the release binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
edits=${EDITS:-20}
debounce=${DEBOUNCE_MS:-100}
cargo build --release --quiet
bin="$repo/target/release/stepwise"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
mkdir -p steps bin data other
# A fake az with no interpreter start-up: it records when it started.
cat > bin/az <<'SH'
#!/bin/sh
date +%s.%N >> "$BENCH_STARTS"
echo '{}'
SH
chmod +x bin/az
printf 'advanced:\n  retry_delay: 0\n' > config.yaml
echo one > data/input.txt
for i in $(seq 1 200); do echo "file $i" > "other/f$i.txt"; done
cat > steps/01_data.rhai <<'RHAI'
let step = #{ files: ["data/"] };
fn run() { az(["data", "sync"]); }
RHAI
cat > steps/02_other.rhai <<'RHAI'
let step = #{ files: ["other/"] };
fn run() { az(["other", "sync"]); }
RHAI
export BENCH_STARTS="$work/starts"
export PATH="$work/bin:$PATH"
"$bin" watch --debounce "$debounce" > watch.out 2>&1 &
pid=$!
cycles() { grep -c 'waiting for changes' watch.out || true; }
wait_cycles() { # n
  for _ in $(seq 1 500); do [ "$(cycles)" -ge "$1" ] && return 0; sleep 0.01; done
  echo "watch did not finish a cycle; output:" >&2; cat watch.out >&2; exit 1
}
wait_cycles 1
: > "$BENCH_STARTS"
writes=()
for i in $(seq 1 "$edits"); do
  n=$(cycles)
  sleep 0.3
  t=$(date +%s.%N)
  echo "edit $i" > data/input.txt
  writes+=("$t")
  wait_cycles $((n + 1))
done
kill -INT "$pid"; wait "$pid" || true
python3 - "$debounce" "$BENCH_STARTS" "${writes[@]}" <<'PY'
import sys, statistics
debounce = float(sys.argv[1])
starts = [float(l) for l in open(sys.argv[2]) if l.strip()]
writes = [float(w) for w in sys.argv[3:]]
if len(starts) != len(writes):
    sys.exit(f"expected {len(writes)} step starts, saw {len(starts)}")
lat = [(s - w) * 1000 for s, w in zip(starts, writes)]
med, worst = statistics.median(lat), max(lat)
target = debounce + 30
print(f"edits: {len(lat)}  debounce: {debounce:.0f} ms")
print(f"write -> step start: median {med:.1f} ms, worst {worst:.1f} ms, best {min(lat):.1f} ms")
print(f"target: median under {target:.0f} ms -> {'PASS' if med < target else 'FAIL'}")
PY
