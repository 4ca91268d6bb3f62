#!/usr/bin/env python3
"""Runs the Rust benches and their peers (PyTorch, ONNX Runtime) in one
session, alternating, with the same thread count, and prints the ratios.

Two suites, both by default:
- throughput: `cargo bench --bench model` and scripts/bench_peer.py;
- startup: `cargo bench --bench startup` (fresh process: load to first
  embedding, peak RSS) and scripts/bench_startup_peer.py.
Each round runs every selected Rust bench and then its peer; the tables give
the median over rounds of the per-round medians.

Usage: python3 scripts/bench_compare.py [--threads 2] [--rounds 2]
         [--suite all|throughput|startup] [--startup-runs 5] [--out FILE.md]
         [--tasks image,text...] [--no-int8] [--kernel avx512|avx2|neon|gemm]
         [--shapes b32|l14-336] [--dtypes f32,f16]

--shapes l14-336 runs every runtime at openai/clip-vit-large-patch14-336's
shapes (images at batch 1 only); --dtypes picks the start-up checkpoints.

--kernel forces clip's kernel (CLIP_KERNEL) and PyTorch's instruction set:
avx512 sets ATEN_CPU_CAPABILITY (MKL and oneDNN use AVX-512 for f32 by
default); avx2 caps all three of its CPU back-ends, ATen's own loops
(ATEN_CPU_CAPABILITY), MKL's GEMM (MKL_ENABLE_INSTRUCTIONS) and oneDNN
(ONEDNN_MAX_CPU_ISA), so that both run AVX2 on a machine that has more. ONNX Runtime has no such switch and picks its own (the header
says which this CPU gives it).
Needs: cargo, and `pip install torch torchvision transformers onnxruntime onnx`.
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
    ap.add_argument("--suite", choices=["all", "throughput", "startup"], default="all")
    ap.add_argument("--startup-runs", type=int, default=5, help="fresh processes per start-up job and round")
    ap.add_argument("--out")
    ap.add_argument("--shapes", choices=["b32", "l14-336"], default="b32",
                    help="model shapes for every runtime: openai/clip-vit-base-patch32 or clip-vit-large-patch14-336")
    ap.add_argument("--dtypes", default="f32,f16", help="start-up suite: which checkpoints (f32, f16)")
    ap.add_argument("--tasks", default="",
                    help="comma-separated task prefixes for the throughput suite (image, text, text-pad77, "
                         "text-long), e.g. `--tasks image --rounds 8` for a longer image-only comparison; default: all")
    ap.add_argument("--no-int8", action="store_true", help="leave out the int8 rows (clip's and the peers')")
    ap.add_argument("--kernel", choices=["avx512", "avx2", "neon", "gemm"],
                    help="force clip's kernel (CLIP_KERNEL) and PyTorch's matching ATEN_CPU_CAPABILITY")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               CLIP_BENCH_SHAPES=args.shapes)
    if args.kernel:
        env["CLIP_KERNEL"] = args.kernel
        if args.kernel in ("avx2", "avx512"):
            env["ATEN_CPU_CAPABILITY"] = args.kernel
        if args.kernel == "avx2":
            env["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
            env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    throughput, startup = args.suite in ("all", "throughput"), args.suite in ("all", "startup")
    if throughput:
        subprocess.run(["cargo", "bench", "--bench", "model", "--no-run"], cwd=ROOT, check=True)
    if startup:
        subprocess.run(["cargo", "bench", "--bench", "startup", "--no-run"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "bench", "-q", "--bench", "startup", "--", "--prepare",
                        *[d for d in args.dtypes.split(",") if d]], cwd=ROOT, env=env, check=True)
    results = collections.defaultdict(list)
    starts = collections.defaultdict(list)
    peaks = []
    load_before = os.getloadavg()
    for r in range(args.rounds):
        if throughput:
            words = [t for t in args.tasks.split(",") if t] + (["f32", "f16"] if args.no_int8 else [])
            for rec in run_jsonl(["cargo", "bench", "-q", "--bench", "model", "--", "--json", *words], env):
                if rec["task"] == "peak":
                    peaks.append(rec)
                    continue
                results[(rec["runtime"], rec["task"], rec["dtype"], rec["batch"], rec["tokens"])].append(rec)
            peer = [sys.executable, "scripts/bench_peer.py", "--threads", str(args.threads), "--tasks", args.tasks,
                    "--shapes", args.shapes]
            for rec in run_jsonl(peer + (["--no-int8"] if args.no_int8 else []), env):
                results[(rec["runtime"], rec["task"], rec["dtype"], rec["batch"], rec["tokens"])].append(rec)
        if startup:
            runs = str(args.startup_runs)
            dtypes = [d for d in args.dtypes.split(",") if d]
            for rec in run_jsonl(["cargo", "bench", "-q", "--bench", "startup", "--", "--json", "--runs", runs,
                                  *dtypes], env):
                starts[("clip", rec["input"], rec["dtype"])].append(rec)
                if rec.get("cli_to_exit_median_s") is not None:
                    starts[("clip-cli", rec["input"], rec["dtype"])].append(
                        {"median_s": rec["cli_to_exit_median_s"], "min_s": rec["cli_to_exit_min_s"],
                         "max_s": rec["cli_to_exit_max_s"]})
            for rec in run_jsonl([sys.executable, "scripts/bench_startup_peer.py", "--threads", str(args.threads),
                                  "--runs", runs, "--shapes", args.shapes, "--dtypes", args.dtypes], env):
                starts[(rec["runtime"], rec["input"], rec["dtype"])].append(rec)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    kernel = peaks[0].get("kernel", "?") if peaks else (args.kernel or "detected")
    lines = [f"Model shapes: {args.shapes}. Machine: {cpu} ({isa}), {os.cpu_count()} cores; {args.threads} threads for every runtime; "
             f"{args.rounds} alternating rounds; load average {load_before[0]:.2f} before, "
             f"{os.getloadavg()[0]:.2f} after.",
             f"clip kernel: {kernel}" + (" (forced by CLIP_KERNEL)" if args.kernel else " (detected)") +
             f"; PyTorch ATEN_CPU_CAPABILITY={env.get('ATEN_CPU_CAPABILITY', 'default')}, "
             f"MKL_ENABLE_INSTRUCTIONS={env.get('MKL_ENABLE_INSTRUCTIONS', 'default')}, "
             f"ONEDNN_MAX_CPU_ISA={env.get('ONEDNN_MAX_CPU_ISA', 'default')}; "
             f"ONNX Runtime: its own dispatch for this CPU ({isa})."]
    if throughput:
        if peaks:
            m = [p["measured_gflops"] for p in peaks if p.get("measured_gflops")]
            lines.append(f"FMA peak with {args.threads} threads: nominal {peaks[0]['nominal_gflops']:.0f} GFLOP/s "
                         f"(cpuinfo clock), measured {statistics.median(m):.0f} GFLOP/s "
                         f"({min(m):.0f}-{max(m):.0f}; register-only {kernel} FMA loop); '% of peak' uses the measured one."
                         if m else "")
        lines += throughput_table(results, args)
    if startup:
        lines += startup_table(starts, args)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


def throughput_table(results, args):
    lines = ["", "Throughput: medians of the per-round medians (range over rounds). int8: clip's "
             "`Precision::Int8`, PyTorch's `quantize_dynamic` and ONNX Runtime's `quantize_dynamic` (int8 weights, "
             "dynamically quantised activations); the ratios compare clip f32 with the peers' f32 and clip int8 "
             "with the peers' int8.", "",
             "| task | batch | tokens | clip f32 /s | clip f16 /s | PyTorch /s | ONNX Runtime /s | clip/PyTorch | clip/ORT "
             "| clip % of peak | clip int8 /s | PyTorch int8 /s | ORT int8 /s | int8: clip/PyTorch | int8: clip/ORT |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def num(v):
        # One decimal at B/32 rates; three significant digits for L/14's images (~0.7/s).
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"

    def med(key):
        recs = results.get(key)
        if not recs:
            return None, ""
        v = [x["per_second"] for x in recs]
        return statistics.median(v), f"{num(min(v))}-{num(max(v))}"

    rows = []  # the clip f32 measurements, in the bench's order
    for (rt, task, dtype, batch, tokens) in results:
        if rt == "clip" and dtype == "f32" and (task, batch, tokens) not in rows:
            rows.append((task, batch, tokens))
    f = lambda v, r: f"{num(v)} ({r})" if v else "-"
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
    for task, batch, tokens in rows:
        c32, c32r = med(("clip", task, "f32", batch, tokens))
        c16, c16r = med(("clip", task, "f16", batch, tokens))
        pt, ptr = med(("pytorch", task, "f32", batch, tokens))
        ort, ortr = med(("onnxruntime", task, "f32", batch, tokens))
        c8, c8r = med(("clip", task, "int8", batch, tokens))
        pt8, pt8r = med(("pytorch", task, "int8", batch, tokens))
        ort8, ort8r = med(("onnxruntime", task, "int8", batch, tokens))
        share = statistics.median(x["peak_share"] for x in results[("clip", task, "f32", batch, tokens)])
        lines.append(f"| {task} | {batch} | {tokens or '-'} | {f(c32, c32r)} | {f(c16, c16r)} | {f(pt, ptr)} | "
                     f"{f(ort, ortr)} | {ratio(c32, pt)} | {ratio(c32, ort)} | {share * 100:.0f}% | {f(c8, c8r)} | "
                     f"{f(pt8, pt8r)} | {f(ort8, ort8r)} | {ratio(c8, pt8)} | {ratio(c8, ort8)} |")

    # On a shared VM the neighbours only ever slow a run down, and their load drifts within a
    # round: the fastest run is each runtime's undisturbed speed, and per-round ratios cancel
    # the drift that is common to a round.
    def fastest(key):
        recs = results.get(key)
        return max(r["per_second"] * r["median_ms"] / r["min_ms"] for r in recs) if recs else None

    def per_round(a, b):
        v = [x["per_second"] / y["per_second"] for x, y in zip(results.get(a, []), results.get(b, []))]
        return f"{statistics.median(v):.2f}x ({min(v):.2f}-{max(v):.2f})" if v else "-"

    lines += ["", "The same f32 runs seen two other ways: each runtime's fastest run over all rounds (its "
              "undisturbed speed: a busy neighbour only slows a run down), and the median over rounds of the "
              "per-round ratios of medians (range), which cancels the drift common to a round.", "",
              "| task | batch | tokens | clip fastest /s | PyTorch fastest /s | ORT fastest /s | clip/PyTorch fastest "
              "| clip/ORT fastest | clip/PyTorch per round | clip/ORT per round |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    g = lambda v: num(v) if v else "-"
    for task, batch, tokens in rows:
        keys = [(rt, task, "f32", batch, tokens) for rt in ("clip", "pytorch", "onnxruntime")]
        c, pt, ort = (fastest(k) for k in keys)
        lines.append(f"| {task} | {batch} | {tokens or '-'} | {g(c)} | {g(pt)} | {g(ort)} | {ratio(c, pt)} | "
                     f"{ratio(c, ort)} | {per_round(keys[0], keys[1])} | {per_round(keys[0], keys[2])} |")
    return lines


STARTUP_NAMES = {"clip": "clip", "clip-cli": "`clip embed` (to exit)", "pytorch": "PyTorch (F32 load)",
                 "pytorch-f16": "PyTorch (dtype auto: F16)", "onnxruntime": "ONNX Runtime"}


def startup_table(starts, args):
    """Rows per input, dtype and runtime: seconds to first embedding and peak RSS, with clip's ratios."""
    fields = {"time": ("median_s", "min_s", "max_s"),
              "after": ("in_process_median_s", "in_process_min_s", "in_process_max_s"),
              "rss": ("peak_rss_mib", "peak_rss_min_mib", "peak_rss_max_mib")}

    def agg(key, what):
        """Median of the per-round medians, min and max over all processes."""
        f_med, f_lo, f_hi = fields[what]
        recs = [r for r in starts.get(key, []) if r.get(f_med) is not None]
        if not recs:
            return None
        return (statistics.median(r[f_med] for r in recs), min(r[f_lo] for r in recs), max(r[f_hi] for r in recs))

    fmt = lambda v, d: "-" if v is None else f"{v[0]:.{d}f} ({v[1]:.{d}f}-{v[2]:.{d}f})"
    lines = ["", f"Start-up: a fresh process loads the model directory and returns its first embedding "
             f"({args.startup_runs} processes per job and round after one page-cache warm-up process; "
             "median over rounds of the per-round medians, range over all processes). "
             "'first embedding' is spawn to first embedding (interpreter start and imports included, exit not); "
             "'after imports' leaves out the imports; peak RSS is the process's VmHWM (/proc/self/status) up to the "
             "first embedding; the `clip embed` row is spawn to exit, for reference. "
             "'embed / again' is the in-process time of the first embedding and of a second one of the same input "
             "(after the measurement; the difference is first-use cost such as packing weights). "
             "clip ÷ X < 1 means clip is faster / smaller.", "",
             "| input | dtype | runtime | first embedding s | after imports s | embed / again s | peak RSS MiB "
             "| clip ÷ X time | clip ÷ X after imports | clip ÷ X RSS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for inp in ("image", "text"):
        for dt in ("f32", "f16"):
            base_t = agg(("clip", inp, dt), "time")
            base_m = agg(("clip", inp, dt), "rss")
            base_ip = agg(("clip", inp, dt), "after")
            for rt in STARTUP_NAMES:
                key = (rt, inp, dt)
                if key not in starts:
                    continue
                t, ip = agg(key, "time"), agg(key, "after")
                m = agg(key, "rss") if rt != "clip-cli" else None
                ratio_t = f"{base_t[0] / t[0]:.2f}" if base_t and t and rt != "clip-cli" else "-"
                ratio_m = f"{base_m[0] / m[0]:.2f}" if base_m and m else "-"
                ratio_ip = f"{base_ip[0] / ip[0]:.2f}" if base_ip and ip else "-"
                recs = starts[key]
                again = (f"{statistics.median(r['embed_median_s'] for r in recs):.3f} / "
                         f"{statistics.median(r['second_embed_median_s'] for r in recs):.3f}"
                         if all("second_embed_median_s" in r for r in recs) else "-")
                lines.append(f"| {inp} | {dt} | {STARTUP_NAMES[rt]} | {fmt(t, 3)} | {fmt(ip, 3)} | {again} | {fmt(m, 0)} | "
                             f"{ratio_t} | {ratio_ip} | {ratio_m} |")
    # The targets, against what was measured.
    c32, c16 = agg(("clip", "image", "f32"), "time"), agg(("clip", "image", "f16"), "time")
    m32, m16 = agg(("clip", "image", "f32"), "rss"), agg(("clip", "image", "f16"), "rss")
    p32 = agg(("pytorch", "image", "f32"), "rss")
    targets = []
    if c32 and c16:
        targets.append(f"First embedding under 0.3 s: F32 {c32[0]:.3f} s, F16 {c16[0]:.3f} s.")
    if m32 and p32:
        targets.append(f"Peak RSS at most half of PyTorch's (F32): {m32[0] / p32[0]:.2f}x.")
    if m32 and m16 and c32 and c16:
        targets.append(f"F16 vs F32: peak RSS {m16[0] / m32[0]:.2f}x (target 0.5x), "
                       f"time {c16[0] / c32[0]:.2f}x (target at most 1.10x).")
    if targets:
        lines += ["", "Targets (image): " + " ".join(targets)]
    return lines


if __name__ == "__main__":
    main()
