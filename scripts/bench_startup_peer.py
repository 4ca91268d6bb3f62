#!/usr/bin/env python3
"""Peers for `cargo bench --bench startup`: model load to first embedding in a
fresh Python process, and that process's peak resident memory, with
transformers/PyTorch and ONNX Runtime on the same model directories, the same
image or sentence and the same thread count.

The model directories are the ones the Rust bench writes (random weights at
openai/clip-vit-base-patch32 shapes): run `cargo bench --bench startup --
--prepare` first (scripts/bench_compare.py does).

Jobs, each in a fresh `python3` process (the first of each series is dropped:
it warms the page cache):
- pytorch: `import torch, transformers`; `CLIPModel.from_pretrained(dir,
  dtype=torch.float32)` (for the F16 checkpoint too: that upcast is what a CPU
  user does; transformers 5 would otherwise keep F16, see pytorch-f16), then
  `CLIPImageProcessor` + `get_image_features` on the PNG, or `CLIPTokenizer` +
  `get_text_features` on the sentence.
- pytorch-f16 (F16 checkpoint only): the same with transformers' default
  `dtype="auto"`, i.e. F16 weights and F16 arithmetic on the CPU.
- onnxruntime (F32, image only): `import onnxruntime, numpy, PIL`; an
  `InferenceSession` on an ONNX export of the vision tower + projection
  (written once to DIR/onnx/vision_model.onnx, not timed), preprocessing in
  numpy/PIL as a torch-free deployment would do it, then the first run.

For each job it prints one JSON line like the Rust bench's --json:
  median_s/min_s/max_s: spawn to first embedding, measured with the parent's
    clock reading handed to the child (interpreter start and imports included,
    the process's exit not);
  in_process_*: after the imports, load + first embedding (imports excluded);
  import_median_s, load_median_s, embed_median_s: the phases;
  second_embed_median_s: the same job again in the same process, after the
    measurement (the difference to the first shows first-use costs);
  peak_rss_mib: the child's peak resident memory up to the first embedding,
    VmHWM of /proc/self/status
    (the imported libraries count), as the Rust bench reports it;
    rss_after_import_mib: VmRSS right after the imports.
Not `resource.getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries it over from
the parent through fork/vfork + exec (a child spawned by a parent that had
reached 2 GiB reports at least 2 GiB), so it measures the parent as well.

Usage: python3 scripts/bench_startup_peer.py --threads 2 [--runs 7]
       [--runtimes pytorch,pytorch-f16,onnxruntime]
       [--models DIR (default $CARGO_TARGET_DIR/bench-models or target/bench-models)]
"""
import time

T0 = time.perf_counter()  # before any heavy import (child mode)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "a photo of a cat sitting on a red sofa"  # as benches/startup.rs
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def status_mib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return None


def child(runtime, inp, model_dir, image, threads, spawned_at):
    """Runs one job and prints its phases and memory as a JSON line."""
    if runtime.startswith("pytorch"):
        import torch
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer
        from PIL import Image
        from transformers.utils import logging as hf_logging
        torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()  # keeps stderr readable; costs nothing measurable
        t1 = time.perf_counter()
        rss_import = status_mib("VmRSS:")
        dtype = torch.float32 if runtime == "pytorch" else "auto"
        model = CLIPModel.from_pretrained(model_dir, dtype=dtype).eval()
        if inp == "image":
            proc = CLIPImageProcessor.from_pretrained(model_dir)
        else:
            tok = CLIPTokenizer.from_pretrained(model_dir)
        t2 = time.perf_counter()

        def embed():
            with torch.inference_mode():
                if inp == "image":
                    px = proc(images=Image.open(image).convert("RGB"), return_tensors="pt")["pixel_values"]
                    out = model.get_image_features(pixel_values=px.to(model.dtype))
                else:
                    out = model.get_text_features(**tok([TEXT], return_tensors="pt"))
            return out if torch.is_tensor(out) else out.pooler_output
    else:
        import numpy as np
        import onnxruntime as ort
        from PIL import Image
        t1 = time.perf_counter()
        rss_import = status_mib("VmRSS:")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(model_dir, "onnx", "vision_model.onnx"), so,
                                    providers=["CPUExecutionProvider"])
        n = sess.get_inputs()[0].shape[-1]  # exported at the model's image size (only the batch is dynamic)
        t2 = time.perf_counter()

        def embed():
            # CLIPImageProcessor: shortest edge to the model's size (bicubic), centre crop, scale, normalise.
            img = Image.open(image).convert("RGB")
            w, h = img.size
            s = n / min(w, h)
            img = img.resize((max(n, round(w * s)), max(n, round(h * s))), Image.BICUBIC)
            left, top = (img.size[0] - n) // 2, (img.size[1] - n) // 2
            a = np.asarray(img.crop((left, top, left + n, top + n)), dtype=np.float32) / 255.0
            px = ((a - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
            return sess.run(None, {"px": np.ascontiguousarray(px)})[0]
    dim = embed().shape[-1]
    t3 = time.perf_counter()
    since_spawn = time.time() - spawned_at
    peak = status_mib("VmHWM:")
    t4 = time.perf_counter()
    embed()  # not part of the start-up: the difference to the first shows first-use costs
    second = time.perf_counter() - t4
    print(json.dumps({"since_spawn_s": since_spawn, "in_process_s": t3 - t1, "import_s": t1 - T0,
                      "load_s": t2 - t1, "embed_s": t3 - t2, "second_embed_s": second, "dim": int(dim),
                      "peak_rss_mib": peak, "rss_after_import_mib": rss_import}), flush=True)


def export_onnx(model_dir):
    """Writes DIR/onnx/vision_model.onnx (pixel values -> image embeddings) once."""
    path = os.path.join(model_dir, "onnx", "vision_model.onnx")
    if os.path.isfile(path):
        return path
    import torch
    from transformers import CLIPModel
    from bench_peer import features_modules  # this directory is on sys.path when run as a script
    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    with torch.inference_mode():
        n = model.config.vision_config.image_size
        torch.onnx.export(features_modules(model)[0], (torch.randn(1, 3, n, n),), tmp, input_names=["px"],
                          dynamic_axes={"px": {0: "b"}}, opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


def stats(v):
    v = sorted(v)
    return statistics.median(v), v[0], v[-1]


def series(cmd, runs, env):
    """Spawns `cmd + [spawn time]` runs + 1 times, drops the first; the child JSON lines."""
    out = []
    for _ in range(runs + 1):
        p = subprocess.run(cmd + [repr(time.time())], env=env, check=True, stdout=subprocess.PIPE, text=True)
        out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return out[1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--runtimes", default="pytorch,pytorch-f16,onnxruntime")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))  # as benches/startup.rs
    ap.add_argument("--models", default=os.path.join(target, "bench-models"))
    ap.add_argument("--shapes", choices=["b32", "l14-336"], default="b32",
                    help="which model directories (benches/startup.rs with CLIP_BENCH_SHAPES writes them)")
    ap.add_argument("--dtypes", default="f32,f16", help="comma-separated: f32, f16")
    ap.add_argument("--child", nargs=6, metavar=("RUNTIME", "INPUT", "DIR", "IMAGE", "THREADS", "SPAWNED_AT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        rt, inp, d, img, threads, at = args.child
        return child(rt, inp, d, img, int(threads), float(at))
    image = os.path.join(args.models, "startup.png")
    dtypes = [d for d in args.dtypes.split(",") if d]
    dirs = {dt: os.path.join(args.models, f"{args.shapes}-random-{dt}") for dt in dtypes}
    if not all(os.path.isfile(os.path.join(d, "model.safetensors")) for d in dirs.values()):
        sys.exit(f"no model directories under {args.models}: run `cargo bench --bench startup -- --prepare`")
    runtimes = args.runtimes.split(",")
    if "onnxruntime" in runtimes and "f32" in dirs:
        export_onnx(dirs["f32"])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    jobs = [(rt, inp, dt) for dt in dtypes for inp in ("image", "text") for rt in runtimes
            if not (rt == "pytorch-f16" and dt == "f32") and not (rt == "onnxruntime" and (dt, inp) != ("f32", "image"))]
    for rt, inp, dt in jobs:
        recs = series([sys.executable, os.path.abspath(__file__), "--child", rt, inp, dirs[dt], image,
                       str(args.threads)], args.runs, env)
        wall, inproc, rss = (stats([r[k] for r in recs]) for k in ("since_spawn_s", "in_process_s", "peak_rss_mib"))
        med = lambda k: statistics.median(r[k] for r in recs)
        print(json.dumps({"runtime": rt, "task": "startup", "input": inp, "dtype": dt, "threads": args.threads,
                          "runs": args.runs, "median_s": wall[0], "min_s": wall[1], "max_s": wall[2],
                          "in_process_median_s": inproc[0], "in_process_min_s": inproc[1],
                          "in_process_max_s": inproc[2], "import_median_s": med("import_s"),
                          "load_median_s": med("load_s"), "embed_median_s": med("embed_s"),
                          "second_embed_median_s": med("second_embed_s"),
                          "peak_rss_mib": rss[0], "peak_rss_min_mib": rss[1], "peak_rss_max_mib": rss[2],
                          "rss_after_import_mib": med("rss_after_import_mib")}), flush=True)


if __name__ == "__main__":
    main()
