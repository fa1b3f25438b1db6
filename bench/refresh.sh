#!/usr/bin/env bash
# Refresh budget benchmark: how many `az` calls (and how long) `stepwise plan --refresh` of an
# unchanged DraftGenie deployment costs.
#
# Copies the 14 DraftGenie steps, prelude.rhai, examples/ and config.example.yaml into a
# temporary directory, deploys them once against the project's stateful fake az
# (tests/fixtures/bin, first on PATH; it keeps its resources in azure.json), then runs
# `stepwise plan --refresh` RUNS times and reports the az calls of one refresh (from the fake's
# call log) and the median wall time. Each real `az` call costs about half a second of CLI
# start-up, so the count is what matters: target at most 30.
#
# Environment:
#   STEPWISE  the binary (default target/release/stepwise, else target/debug/stepwise)
#   RUNS      timed refreshes (default 5)
#   KEEP=1    keep the temporary directory
# Exit status: 0 when the budget is met, 1 when not, 2 on a setup error.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin="${STEPWISE:-$repo/target/release/stepwise}"
[[ -x "$bin" ]] || bin="$repo/target/debug/stepwise"
[[ -x "$bin" ]] || { echo "refresh.sh: no stepwise binary (cargo build --release, or set STEPWISE)" >&2; exit 2; }
runs="${RUNS:-5}"
work="$(mktemp -d "${TMPDIR:-/tmp}/stepwise-refresh.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then echo "keeping $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
cp -r "$repo/steps" "$repo/examples" "$repo/prelude.rhai" "$work/"
sed -e "s/retry_delay: 5 /retry_delay: 0 /" \
    -e "s/gemini_api_key: ''/gemini_api_key: 'bench-gemini-key'/" \
    "$repo/config.example.yaml" > "$work/config.yaml"
cd "$work"
export PATH="$repo/tests/fixtures/bin:$PATH" NO_COLOR=1
export FAKE_AZ_STATE="$work/azure.json" FAKE_AZ_LOG="$work/az.log"
export FAKE_DOCKER_LOG="$work/docker.log" FAKE_CURL_LOG="$work/curl.log"
"$bin" --auto-approve >deploy.out 2>&1 || { cat deploy.out >&2; echo "refresh.sh: the deployment failed" >&2; exit 2; }
times=()
calls=0
for i in $(seq 1 "$runs"); do
  rm -f az.log
  start=$(date +%s%N)
  "$bin" plan --refresh >plan.out 2>&1 || { cat plan.out >&2; exit 2; }
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000000 )))
  calls=$(wc -l < az.log)
done
grep -q "Plan: 0 to run, 14 up to date" plan.out || { cat plan.out >&2; echo "refresh.sh: the refresh found drift in an unchanged deployment" >&2; exit 2; }
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "plan --refresh of an unchanged DraftGenie deployment:"
echo "  az calls: $calls (budget 30)"
echo "  curl calls: $(wc -l < curl.log 2>/dev/null || echo 0) (cumulative, deploy included)"
echo "  wall time, median of $runs: ${median} ms (fake az: ~50 ms per call; the real CLI ~500 ms)"
[[ "$calls" -le 30 ]]
