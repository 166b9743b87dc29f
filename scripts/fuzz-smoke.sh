#!/usr/bin/env bash
# The fuzzing smoke run of CI (FUZZING.md): builds every cargo-fuzz target of fuzz/ and runs
# each for FUZZ_SECONDS (default 15) from its seed corpus in fuzz/corpus/. Any crash, panic,
# timeout or leak fails the run; the input that did it is kept in fuzz/artifacts/TARGET/.
#
# Toolchain: the stable Rust toolchain and cargo-fuzz from crates.io (scripts/test-deps.sh
# installs it). No nightly is needed: the targets are built with `-s none` (no sanitizer,
# which is the only part of cargo-fuzz that needs `-Z` flags); the coverage instrumentation
# (`-Cpasses=sancov-module` and its LLVM options) is stable. The corpus in the repository is
# only read: new inputs go to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-15}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
build=(-s none --codegen-units 16 --target-dir "$target_dir")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: cargo-fuzz is missing (scripts/test-deps.sh installs it)" >&2
  exit 1
fi

start=$(date +%s)
cargo fuzz build "${build[@]}"
built=$(date +%s)
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
targets=$(cargo fuzz list)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
for t in $targets; do
  mkdir -p "$work/$t/new" "$work/$t/artifacts" "fuzz/corpus/$t"
  log="$work/$t/log"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a leak or a blow-up.
  if "$bin_dir/$t" "$work/$t/new" "fuzz/corpus/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    echo "fuzz-smoke: $t ok (${seconds}s, ${execs:-?} executions, ${cov:-no coverage line})"
  else
    echo "fuzz-smoke: $t FAILED" >&2
    tail -n 60 "$log" >&2
    mkdir -p "fuzz/artifacts/$t"
    cp "$work/$t/artifacts/"* "fuzz/artifacts/$t/" 2>/dev/null || true
    echo "fuzz-smoke: reproduce with: cargo fuzz run -s none $t fuzz/artifacts/$t/<file>" >&2
    failed+=("$t")
  fi
done
end=$(date +%s)
echo "fuzz-smoke: build $((built - start))s, runs $((end - built))s; $(echo $targets | wc -w) targets, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
