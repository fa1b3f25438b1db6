#!/usr/bin/env bash
# Fuzzing: runs each cargo-fuzz target in fuzz/ for a set time and prints, per target, the runs
# executed, exec/s, coverage (edges; features) and whether it found a crash, hang or OOM.
# Not run in CI.
#
#   bench/fuzz.sh                         every target, 600 s each, one after another
#   FUZZ_SECONDS=60 bench/fuzz.sh state_parse
#   FUZZ_PARALLEL=2 bench/fuzz.sh         two targets at a time (one libFuzzer job each)
#
# Settings (environment):
#   FUZZ_SECONDS    time per target (-max_total_time), default 600
#   FUZZ_PARALLEL   targets at once, default 1 (the machine has 2 cores; leave one free)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang, default 10
#   FUZZ_RSS_MB     memory limit per target in MB (-rss_limit_mb), default 2048
#   FUZZ_SANITIZER  address | none; default address, falling back to none if it does not build
#   FUZZ_KEEP_GOING 1: go on after a crash (-fork=1 -ignore_crashes=1 ...), default 0
#
# Works with a stable toolchain: cargo-fuzz needs nightly flags (-Z...), which a stable rustc
# accepts with RUSTC_BOOTSTRAP=1. cargo-fuzz is installed from crates.io if missing.
#
# Corpora live in fuzz/corpus/<target> (not committed); the committed seeds in
# fuzz/seeds/<target> are copied in first. Crashes go to fuzz/artifacts/<target>, logs to
# fuzz/logs/<target>.log. Reproduce a crash with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer <s> <target> fuzz/artifacts/<target>/<file>
# (or run fuzz/target/<host triple>/release/<target> <file>; minimize with `cargo fuzz tmin`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds=${FUZZ_SECONDS:-600}
parallel=${FUZZ_PARALLEL:-1}
timeout=${FUZZ_TIMEOUT:-10}
rss=${FUZZ_RSS_MB:-2048}
sanitizer=${FUZZ_SANITIZER:-}
keep_going=${FUZZ_KEEP_GOING:-0}
all_targets=(state_parse config_lookup step_declaration)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install cargo-fuzz; a few minutes)..." >&2
    cargo install --locked cargo-fuzz
fi
# A stable compiler accepts nightly flags with RUSTC_BOOTSTRAP=1; harmless on nightly.
export RUSTC_BOOTSTRAP=1

# Build once (all targets); ASan unless it cannot build or link here.
build() { cargo fuzz build --sanitizer "$1" >&2; }
if [ -z "$sanitizer" ]; then
    if build address; then
        sanitizer=address
    else
        echo "address sanitizer build failed; building without a sanitizer" >&2
        sanitizer=none
        build none
    fi
else
    build "$sanitizer"
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$triple/release"
mkdir -p fuzz/logs
run_one() { # target
    local t=$1
    local corpus="fuzz/corpus/$t" artifacts="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    cp -n "fuzz/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    local extra=()
    if [ -f "fuzz/dict/$t.dict" ]; then extra+=("-dict=fuzz/dict/$t.dict"); fi
    if [ "$keep_going" = 1 ]; then
        extra+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    # The binary built above, run directly (`cargo fuzz run` would rebuild whenever src/
    # changed meanwhile). -jobs is not used: without it libFuzzer runs one in-process job (one
    # core) and stops at the first crash, writing its input to the artifacts directory.
    "$bin_dir/$t" -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss" \
        -print_final_stats=1 "${extra[@]}" "$corpus" >"fuzz/logs/$t.log" 2>&1
}

summary() { # target exit-status
    local t=$1 status=$2 log="fuzz/logs/$t.log"
    # The last status line: "#N  DONE  cov: C ft: F corp: K/S ... exec/s: E rss: R".
    local last runs cov ft corp execs rss_mb found
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    execs=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.*corp: ([0-9]+\/[0-9A-Za-z]+).*/\1/p' <<<"$last")
    rss_mb=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    found=$(find "fuzz/artifacts/$t" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    printf '%-17s runs %-11s exec/s %-7s cov %-6s ft %-7s corpus %-10s peak rss %s MB  exit %s\n' \
        "$t" "${runs:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss_mb:-?}" "$status"
    if [ -n "$found" ]; then
        echo "  FOUND (fuzz/artifacts/$t):"
        sed 's/^/    /' <<<"$found"
        grep -m1 -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|has overflowed its stack' \
            "$log" | sed 's/^/    /' || true
    else
        echo "  no crashes, hangs or OOMs"
    fi
}

echo "fuzzing ${targets[*]}: ${seconds}s each, $parallel at a time, sanitizer $sanitizer" >&2
declare -A status
pids=()
names=()
for t in "${targets[@]}"; do
    while [ "${#pids[@]}" -ge "$parallel" ]; do
        wait "${pids[0]}" && status[${names[0]}]=0 || status[${names[0]}]=$?
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    done
    echo "$(date +%T) start $t" >&2
    run_one "$t" &
    pids+=($!)
    names+=("$t")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" && status[${names[$i]}]=0 || status[${names[$i]}]=$?
done

echo
echo "fuzz results (${seconds}s per target, sanitizer $sanitizer, $(date -u +%FT%TZ)):"
failed=0
for t in "${targets[@]}"; do
    summary "$t" "${status[$t]}"
    [ "${status[$t]}" = 0 ] || failed=1
done
exit "$failed"
