#!/usr/bin/env python3
"""Times the reference: PIL.Image.open + transformers CLIPImageProcessorPil
(Pillow backend, default CLIP config) on the images written by
`cargo bench --bench preprocess` (target/bench-images/), median of N runs,
single process (Pillow's resize releases the GIL but runs one thread here).

Usage: cargo bench --bench preprocess && python3 scripts/bench_preprocess_peer.py
"""

import os
import statistics
import sys
import time

import numpy as np
import PIL
import transformers
from PIL import Image
from transformers import CLIPImageProcessorPil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIR = os.path.join(ROOT, "target", "bench-images")
RUNS = 31


def median_secs(f, runs=RUNS):
    f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    proc = CLIPImageProcessorPil()
    print(f"transformers {transformers.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}")
    for name in ["bench_1024x768.jpg", "bench_1024x768.png"]:
        path = os.path.join(DIR, name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `cargo bench --bench preprocess` first")

        def decode():
            with Image.open(path) as im:
                im.load()

        def full():
            with Image.open(path) as im:
                proc(images=im, return_tensors="np")

        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
        t_all = median_secs(full)
        t_dec = median_secs(decode)
        t_pre = median_secs(lambda: proc(images=rgb, return_tensors="np"))
        print(f"{name}: {1 / t_all:.1f} img/s ({t_all * 1e3:.2f} ms: decode {t_dec * 1e3:.2f} ms"
              f" + preprocess {t_pre * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
