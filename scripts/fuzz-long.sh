#!/usr/bin/env bash
# The long fuzzing run of FUZZING.md: runs each fuzz target (all, or those named after the
# time) for SECONDS, one after the other, at the lowest CPU priority, and prints one
# Markdown table row per target: executions, executions per second, libFuzzer's final
# `cov:` and `ft:`, and the corpus it ended with. The corpus grows in
# $FUZZ_WORK/TARGET (default target/fuzz-long/), seeded from fuzz/corpus/TARGET; crashes
# are written there too. Usage: scripts/fuzz-long.sh SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:?usage: scripts/fuzz-long.sh SECONDS [TARGET...]}"
shift
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
work="${FUZZ_WORK:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz-long}"
cargo fuzz build -s none --codegen-units 16 --target-dir "$target_dir" >&2
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(cargo fuzz list | tr '\n' ' ')"

echo "| target | time | executions | exec/s | cov | ft | corpus (inputs, bytes) | result |"
echo "|---|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts" "fuzz/corpus/$t"
  log="$work/$t/log"
  result=ok
  nice -n 19 "$bin_dir/$t" "$work/$t/corpus" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" >"$log" 2>&1 ||
    result="crash: $(ls -t "$work/$t/artifacts" | head -1)"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9]*[a-zA-Z]*' | tail -1)
  read -r _ cov _ ft _ corp <<<"$last"
  echo "| $t | ${seconds}s | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |"
done
