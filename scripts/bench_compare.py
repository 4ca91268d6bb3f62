#!/usr/bin/env python3
"""Runs the Rust model bench and its peers (PyTorch, ONNX Runtime) in one
session, alternating, with the same thread count, and prints the ratios.

Usage: python3 scripts/bench_compare.py [--threads 2] [--rounds 2] [--out FILE.md]
Needs: cargo, and `pip install torch transformers onnxruntime onnx`.
"""
import argparse
import collections
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_jsonl(cmd, env):
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    subprocess.run(["cargo", "bench", "--bench", "model", "--no-run"], cwd=ROOT, check=True)
    results = collections.defaultdict(list)
    for r in range(args.rounds):
        for rec in run_jsonl(["cargo", "bench", "-q", "--bench", "model", "--", "--json"], env):
            results[(rec["runtime"], rec["task"], rec["dtype"], rec["batch"], rec["tokens"])].append(rec)
        for rec in run_jsonl([sys.executable, "scripts/bench_peer.py", "--threads", str(args.threads)], env):
            results[(rec["runtime"], rec["task"], rec["dtype"], rec["batch"], rec["tokens"])].append(rec)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [f"Machine: {cpu}, {os.cpu_count()} cores; {args.threads} threads for every runtime; "
             f"{args.rounds} alternating rounds, medians of the per-round medians (range over rounds).", "",
             "| task | batch | tokens | clip f32 /s | clip f16 /s | PyTorch /s | ONNX Runtime /s | clip/PyTorch | clip/ORT | clip % of peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def med(key):
        recs = results.get(key)
        if not recs:
            return None, ""
        v = [x["per_second"] for x in recs]
        return statistics.median(v), f"{min(v):.1f}-{max(v):.1f}"

    rows = []  # the clip f32 measurements, in the bench's order
    for (rt, task, dtype, batch, tokens) in results:
        if rt == "clip" and dtype == "f32" and (task, batch, tokens) not in rows:
            rows.append((task, batch, tokens))
    for task, batch, tokens in rows:
        c32, c32r = med(("clip", task, "f32", batch, tokens))
        c16, c16r = med(("clip", task, "f16", batch, tokens))
        pt, ptr = med(("pytorch", task, "f32", batch, tokens))
        ort, ortr = med(("onnxruntime", task, "f32", batch, tokens))
        share = statistics.median(x["peak_share"] for x in results[("clip", task, "f32", batch, tokens)]) if c32 else None
        f = lambda v, r: f"{v:.1f} ({r})" if v else "-"
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
        lines.append(f"| {task} | {batch} | {tokens or '-'} | {f(c32, c32r)} | {f(c16, c16r)} | {f(pt, ptr)} | {f(ort, ortr)} | "
                     f"{ratio(c32, pt)} | {ratio(c32, ort)} | {share * 100:.0f}% |" if share else "| - |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
