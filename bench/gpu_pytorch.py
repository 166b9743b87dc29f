#!/usr/bin/env python3
"""sentence-transformers (PyTorch, CUDA) measured like bench/gpu.rs measures our CUDA embedder.

Same shapes: prompts of exactly 16, 64 and 256 token ids at batch 1, 8, 64 and 256, in fp32
and fp16 (`model.half()`). Token ids in, normalized vectors back on the host, the way the Rust
bench times `CudaBackend::embed` (upload of ids, forward, mean pooling, normalize, download);
tokenization is left out on both sides. Prints a table and writes JSON lines for
bench/run-gpu-bench.sh.

Without the model files (--model-dir missing) it uses a randomly initialised BERT of
all-MiniLM-L6-v2's shape, as the Rust bench does: the speed does not depend on the values.
"""
import argparse
import json
import os
import statistics
import sys
import time

LENGTHS = (16, 64, 256)
BATCHES = (1, 8, 64, 256)


def load(model_dir, device):
    import torch
    if model_dir and os.path.exists(os.path.join(model_dir, "model.safetensors")):
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(model_dir, device=device)
        bert = st[0].auto_model
        return bert, "model weights"
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                     num_attention_heads=12, intermediate_size=1536, hidden_act="gelu",
                     max_position_embeddings=512, layer_norm_eps=1e-12)
    torch.manual_seed(7)
    return BertModel(cfg, add_pooling_layer=False).to(device).eval(), "random weights"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed here", file=sys.stderr)
        return 0
    if not torch.cuda.is_available():
        print("skipped: no CUDA device (torch.cuda.is_available() is False)")
        return 0
    device = "cuda"
    print(f"pytorch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    rows = []
    for precision in args.precisions.split(","):
        bert, what = load(args.model_dir, device)
        if precision == "fp16":
            bert = bert.half()
        elif precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = True
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
        print(f"{precision}: {what}")
        for tokens in LENGTHS:
            for batch in BATCHES:
                g = torch.Generator().manual_seed(tokens)
                ids = torch.randint(1000, 29000, (batch, tokens), generator=g, dtype=torch.int64)
                ids[:, 0] = 101
                ids[:, -1] = 102
                mask = torch.ones_like(ids)

                @torch.inference_mode()
                def run():
                    i = ids.to(device, non_blocking=False)
                    m = mask.to(device)
                    h = bert(input_ids=i, attention_mask=m).last_hidden_state
                    mf = m.unsqueeze(-1).to(h.dtype)
                    pooled = (h * mf).sum(1) / mf.sum(1).clamp(min=1e-9)
                    out = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                    return out.cpu()

                for _ in range(5):
                    run()
                torch.cuda.synchronize()
                times = []
                start = time.perf_counter()
                while len(times) < 20 or time.perf_counter() - start < args.min_seconds:
                    t0 = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - t0)
                mean = statistics.mean(times)
                row = {"impl": "pytorch", "precision": precision, "tokens": tokens,
                       "batch": batch, "mean_s": mean, "sent_per_s": batch / mean}
                rows.append(row)
                print(f"  {tokens:>3} tok  b{batch:<3}  {mean * 1e3:9.3f} ms  {batch / mean:12.0f} sent/s")
        del bert
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
