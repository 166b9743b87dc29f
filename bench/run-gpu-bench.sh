#!/usr/bin/env bash
# Runs the prebuilt GPU bench executable and the PyTorch comparison on the GPU machine, then
# prints one table. No Rust toolchain is needed there: build the executable first with
#   cargo bench --bench gpu --no-run        (see kernels/README.md)
#
#   bench/run-gpu-bench.sh [path/to/gpu-bench-executable]
#
# Environment: INFERGATE_MODEL_DIR (model files; random weights of the same shapes otherwise),
# INFERGATE_BENCH_PRECISION (default fp32,fp16), INFERGATE_BENCH_INDEX_SIZES (default
# 100000,1000000,5000000), OUT (results folder, default target/gpu-bench).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXE="${1:-}"
if [ -z "$EXE" ]; then
    EXE="$(ls -t target/release/deps/gpu-* 2>/dev/null | grep -v '\.d$' | head -1 || true)"
fi
if [ -z "$EXE" ] || [ ! -x "$EXE" ]; then
    echo "no bench executable: build it with 'cargo bench --bench gpu --no-run' and pass its path" >&2
    exit 2
fi
OUT="${OUT:-$ROOT/target/gpu-bench}"
mkdir -p "$OUT"
export CRITERION_HOME="$OUT/criterion"
MODEL_DIR="${INFERGATE_MODEL_DIR:-$ROOT/models/all-MiniLM-L6-v2}"
export INFERGATE_MODEL_DIR="$MODEL_DIR"

echo "== infergate CUDA embedder + GPU index ($EXE)"
"$EXE" --bench 2>&1 | tee "$OUT/rust.log"

echo "== sentence-transformers on PyTorch CUDA"
python3 bench/gpu_pytorch.py --model-dir "$MODEL_DIR" \
    --precisions "${INFERGATE_BENCH_PRECISION:-fp32,fp16}" --out "$OUT/pytorch.jsonl" \
    2>&1 | tee "$OUT/pytorch.log" || echo "(pytorch side failed; see $OUT/pytorch.log)"

python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rust = {}
for bench in glob.glob(os.path.join(out, "criterion", "**", "new", "benchmark.json"), recursive=True):
    est = os.path.join(os.path.dirname(bench), "estimates.json")
    if not os.path.exists(est):
        continue
    b = json.load(open(bench))
    mean_ns = json.load(open(est))["mean"]["point_estimate"]
    rust[(b["group_id"], b.get("function_id"), b.get("value_str"))] = mean_ns
torch = {}
p = os.path.join(out, "pytorch.jsonl")
if os.path.exists(p):
    for line in open(p):
        r = json.loads(line)
        torch[(r["precision"], r["tokens"], r["batch"])] = r["mean_s"] * 1e9
if not rust:
    print("no Rust results (no CUDA device?)")
print()
print("| precision | tokens | batch | infergate sent/s | pytorch sent/s | ratio |")
print("|---|---|---|---|---|---|")
for (group, fn, val), ns in sorted(rust.items()):
    if not group.startswith("gpu_embed_"):
        continue
    prec = group[len("gpu_embed_"):]
    tokens, batch = int(fn.replace("tok", "")), int(val.lstrip("b"))
    ours = batch / (ns * 1e-9)
    t = torch.get((prec, tokens, batch))
    theirs = batch / (t * 1e-9) if t else None
    ratio = f"{ours / theirs:.2f}x" if theirs else "-"
    print(f"| {prec} | {tokens} | {batch} | {ours:,.0f} | {f'{theirs:,.0f}' if theirs else '-'} | {ratio} |")
print()
print("| vectors | queries | search latency (mean) |")
print("|---|---|---|")
for (group, fn, val), ns in sorted(rust.items(), key=lambda kv: (kv[0][0], int(kv[0][1] or 0), kv[0][2] or "")):
    if group == "gpu_index":
        print(f"| {int(fn):,} | {val.lstrip('q')} | {ns / 1e3:,.1f} us |")
PY
