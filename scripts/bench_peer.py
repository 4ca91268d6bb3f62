#!/usr/bin/env python3
"""Peers for `cargo bench --bench model`: transformers/PyTorch and ONNX Runtime
on a CLIPModel with openai/clip-vit-base-patch32's shapes (random weights:
speed does not depend on the values), the same inputs and thread count.

Prints one JSON object per measurement, like the Rust bench with --json:
  {"runtime": "pytorch", "task": "image", "dtype": "f32", "batch": 16,
   "tokens": null, "per_second": ..., "median_ms": ..., "min_ms": ..., "max_ms": ...}

Usage: python3 scripts/bench_peer.py --threads 2 [--runtimes pytorch,onnxruntime]
Run it in the same session as the Rust bench: scripts/bench_compare.py does both.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def timeit(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return statistics.median(ts), ts[0], ts[-1]


def emit(runtime, task, batch, tokens, med, lo, hi, dtype="f32"):
    print(json.dumps({"runtime": runtime, "task": task, "dtype": dtype, "batch": batch, "tokens": tokens,
                      "per_second": batch / med, "median_ms": med * 1e3, "min_ms": lo * 1e3,
                      "max_ms": hi * 1e3}), flush=True)


def text_ids(batch, length):
    import torch
    ids = torch.tensor([[49406] + [320 + ((b * 31 + i * 7) % 4000) for i in range(1, length - 1)] + [49407]
                        for b in range(batch)])
    return ids


def features_modules(model):
    """`(image, text)` torch modules around `model.get_image_features` / `get_text_features`, for
    ONNX export (transformers 5 may return an output object rather than the tensor)."""
    import torch

    class Img(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, px):
            out = self.m.get_image_features(pixel_values=px)
            return out if torch.is_tensor(out) else out.pooler_output

    class Txt(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            out = self.m.get_text_features(input_ids=ids, attention_mask=mask)
            return out if torch.is_tensor(out) else out.pooler_output

    return Img(model), Txt(model)


def text_cases(path):
    """The Rust bench's text inputs (target/bench-inputs/texts.json): the same ids and masks.
    Without the file, full-length synthetic texts (every token real)."""
    import torch
    if path and os.path.exists(path):
        with open(path) as f:
            cases = json.load(f)
        return [(c["task"], torch.tensor(c["input_ids"]), torch.tensor(c["attention_mask"]), c["runs"])
                for c in cases]
    out = []
    for batch, length, runs in [(1, 7, 30), (64, 12, 5), (64, 77, 5)]:
        ids = text_ids(batch, length)
        out.append(("text", ids, torch.ones_like(ids), runs))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runtimes", default="pytorch,onnxruntime")
    ap.add_argument("--no-int8", action="store_true",
                    help="skip the int8 peers (PyTorch quantize_dynamic, ONNX Runtime quantize_dynamic)")
    ap.add_argument("--text-inputs", default=os.path.join(os.path.dirname(__file__), "..", "target",
                                                          "bench-inputs", "texts.json"),
                    help="text ids/masks written by `cargo bench --bench model` (default: %(default)s)")
    ap.add_argument("--shapes", choices=["b32", "l14-336"], default="b32",
                    help="openai/clip-vit-base-patch32's shapes, or clip-vit-large-patch14-336's (images at batch 1 only)")
    ap.add_argument("--tasks", default="",
                    help="comma-separated task prefixes to run (image, text, text-pad77, text-long); default: all")
    args = ap.parse_args()
    prefixes = [t for t in args.tasks.split(",") if t]
    wanted = lambda task: not prefixes or any(task.startswith(p) for p in prefixes)
    import torch
    from transformers import CLIPConfig, CLIPModel
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.shapes == "b32":
        cfg = CLIPConfig(text_config=dict(eos_token_id=2, bos_token_id=0, pad_token_id=1), vision_config={},
                         projection_dim=512)
    else:
        cfg = CLIPConfig(text_config=dict(eos_token_id=2, bos_token_id=0, pad_token_id=1, hidden_size=768,
                                          intermediate_size=3072, num_attention_heads=12, projection_dim=768),
                         vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                            num_attention_heads=16, image_size=336, patch_size=14,
                                            projection_dim=768),
                         projection_dim=768)
    size = cfg.vision_config.image_size
    model = CLIPModel(cfg).eval()
    runtimes = args.runtimes.split(",")
    cases_img = ([(1, 20), (16, 5)] if args.shapes == "b32" else [(1, 5)]) if wanted("image") else []
    cases_txt = [c for c in text_cases(args.text_inputs) if wanted(c[0])]
    if "pytorch" in runtimes:
        # int8: dynamic quantisation of every nn.Linear (int8 weights, activations quantised per
        # product), PyTorch's counterpart of clip's Precision::Int8.
        variants = [("f32", model)]
        if not args.no_int8:
            variants.append(("int8", torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                                             dtype=torch.qint8)))
        with torch.inference_mode():
            for dtype, m in variants:
                for batch, runs in cases_img:
                    px = torch.randn(batch, 3, size, size)
                    emit("pytorch", "image", batch, None,
                         *timeit(lambda: m.get_image_features(pixel_values=px), runs), dtype=dtype)
                for task, ids, mask, runs in cases_txt:
                    batch, length = ids.shape
                    emit("pytorch", task, batch, length,
                         *timeit(lambda: m.get_text_features(input_ids=ids, attention_mask=mask), runs),
                         dtype=dtype)
    if "onnxruntime" in runtimes:
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime not installed; skipping", file=sys.stderr)
            return
        with tempfile.TemporaryDirectory() as d:
            img_module, txt_module = features_modules(model)
            img_path, txt_path = os.path.join(d, "img.onnx"), os.path.join(d, "txt.onnx")
            torch.onnx.export(img_module, (torch.randn(1, 3, size, size),), img_path, input_names=["px"],
                              dynamic_axes={"px": {0: "b"}}, opset_version=17, dynamo=False)
            torch.onnx.export(txt_module, (text_ids(2, 7), torch.ones(2, 7, dtype=torch.long)), txt_path,
                              input_names=["ids", "mask"],
                              dynamic_axes={"ids": {0: "b", 1: "l"}, "mask": {0: "b", 1: "l"}},
                              opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            paths = [("f32", img_path, txt_path)]
            if not args.no_int8:
                # int8: onnxruntime.quantization.quantize_dynamic (int8 weights, dynamic activations).
                from onnxruntime.quantization import QuantType, quantize_dynamic
                qi, qt = os.path.join(d, "img-int8.onnx"), os.path.join(d, "txt-int8.onnx")
                quantize_dynamic(img_path, qi, weight_type=QuantType.QInt8)
                quantize_dynamic(txt_path, qt, weight_type=QuantType.QInt8)
                paths.append(("int8", qi, qt))
            for dtype, ip, tp in paths:
                img = ort.InferenceSession(ip, so, providers=["CPUExecutionProvider"])
                txt = ort.InferenceSession(tp, so, providers=["CPUExecutionProvider"])
                for batch, runs in cases_img:
                    px = torch.randn(batch, 3, size, size).numpy()
                    emit("onnxruntime", "image", batch, None, *timeit(lambda: img.run(None, {"px": px}), runs),
                         dtype=dtype)
                for task, ids, mask, runs in cases_txt:
                    batch, length = ids.shape
                    feed = {"ids": ids.numpy(), "mask": mask.numpy()}
                    emit("onnxruntime", task, batch, length, *timeit(lambda: txt.run(None, feed), runs),
                         dtype=dtype)


if __name__ == "__main__":
    main()
