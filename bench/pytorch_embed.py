#!/usr/bin/env python3
"""sentence-transformers on PyTorch CPU, measured like bench/embed.rs measures our embedder.

Same inputs (texts of exactly 16, 64 and 256 tokens made of single-token words), same thread
count, tokenization included (`SentenceTransformer.encode`). Prints a table and writes JSON for
bench/run-embed-bench.sh.
"""
import argparse
import json
import os
import statistics
import time

LENGTHS = (16, 64, 256)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]


def text_of(tokens):
    """Same generator as text_of() in bench/embed.rs."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(max(tokens - 2, 0)))


def timed(fn, min_runs, min_seconds, clock=time.perf_counter):
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: the thread's CPU time (leaves out waiting for a core on a shared machine; "
        "only meaningful with --threads 1, where torch computes on the calling thread)",
    )
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads == 1:
        # Our side tokenizes on the one thread; keep the Rust tokenizer pool out of it here too.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model = SentenceTransformer(args.model_dir, device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    result = {"clock": args.clock, "threads": args.threads, "torch": torch.__version__, "b1": {}, "b32": {}}
    for n in LENGTHS:
        text = text_of(n)
        got = len(model.tokenizer(text)["input_ids"])
        assert got == n, f"{n}: tokenizes to {got}"

        one = [text]
        for _ in range(5):
            model.encode(one, batch_size=1)
        t = timed(lambda: model.encode(one, batch_size=1), 30, 5.0, clock)
        result["b1"][str(n)] = {
            "median_ms": statistics.median(t) * 1e3,
            "min_ms": min(t) * 1e3,
            "runs": len(t),
        }

        many = [text] * 32
        model.encode(many, batch_size=32)
        t = timed(lambda: model.encode(many, batch_size=32), 5, 8.0, clock)
        result["b32"][str(n)] = {
            "texts_per_s": 32 / statistics.median(t),
            "best_texts_per_s": 32 / min(t),
            "runs": len(t),
        }
        print(
            f"tokens {n:>3}: batch 1 {result['b1'][str(n)]['median_ms']:.2f} ms, "
            f"batch 32 {result['b32'][str(n)]['texts_per_s']:.1f} texts/s",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
