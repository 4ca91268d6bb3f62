#!/usr/bin/env python3
"""Train the embedded demo model of `clip`: a tiny CLIP, from scratch, on generated shapes.

Why: `clip tag` must work offline with no download, so the crate embeds a small
default model. No pretrained weights are reachable from our build machines, so
this script trains a toy CLIP on a procedurally generated image-caption dataset.
It is a demo model, not a photo model: it knows coloured geometric shapes on
plain backgrounds and nothing else. For real photos use a real checkpoint such
as openai/clip-vit-base-patch32.

Data (generated once per run, seeded; nothing is downloaded):
  64x64 RGB images drawn with Pillow (2x supersampled, then downsampled):
  1-3 copies of one shape  (circle, square, triangle, star, diamond, cross)
  in one colour            (red, orange, yellow, green, blue, purple, pink),
  with jittered hue/brightness, size (small/large), position (left/right/top/
  bottom/center, for a single small shape), texture (plain/striped/dotted),
  rotation, optional outline, grey-ish background (optionally a gradient) and
  Gaussian pixel noise. Captions come from varied templates that mention a
  random subset of the attributes, but always the shape ("a photo of a red
  circle.", "two small blue squares", "a striped star on the left"). The
  article is always "a" (also before "orange"), like CLIP's "a photo of a {}.".
  A fixed training set of --train-images (default 40,000) images is drawn
  before training (image i from np.random.default_rng([seed, 1, i]), with more
  single large shapes than the held-out mix; --workers processes); training
  step s picks its batch indices and draws the captions for them from
  np.random.default_rng([seed, 0, s]). Held-out images use a different seed
  (see HELDOUT_SEED) and the default attribute mix.
  (Profiling on the shared 2-core machine: drawing 64 images takes ~0.15 s,
  a forward/backward step ~2-2.7 s with 2 torch threads but ~0.4-0.6 s with 1
  thread, so the thread count, not the data, made the first runs slow.)

Model: transformers.CLIPModel, vision ViT 64px / patch 8, width 128, 4 layers,
  4 heads, MLP 512 (--vision-width/--vision-layers); text width 64, 4 layers, 4 heads, MLP 256, 77 positions,
  vocabulary 49408 = the standard CLIP BPE (built from open_clip's
  bpe_simple_vocab_16e6.txt.gz, see build_tokenizer); projection 64;
  quick_gelu; text bos/pad/eos ids 0/1/2 as in OpenAI's hub configs, which
  selects the legacy argmax (first eos) pooling.

Training: 1 torch thread (--threads), AdamW (lr 1e-3, betas 0.9/0.98, wd 0.1
  on matrices), batch 64, 100 warmup steps then cosine decay to 0 over --steps
  (default 1800) or --time-budget (default 0 = none; a safety limit), whichever
  is further along; --stop-at ends the run early once the validation shape and
  colour accuracies reach it. CLIP's symmetric cross-entropy in
  which every caption that is consistent with an image (all attributes it
  mentions are true of the image) counts as a positive of that image (soft
  targets), because partial captions ("a red shape") match many images in a
  batch. Learnable logit scale, initialised to ln(1/0.07), clamped to ln(100).
  The steps actually run, what ended the run and the learning rate at each
  validation are recorded. Same seed + same versions = same batches and
  initialisation; with --time-budget 0 the schedule depends on steps only and
  the run is reproducible (up to BLAS rounding); with a time budget the number
  of steps depends on the machine's speed.
  (Earlier runs generated each batch on the fly with 2 threads, 1.5-6 s per
  step: batch 128, lr 1e-3 and more small/multiple shapes, 360 steps; then
  batch 64, lr 2e-3, captions naming the shape in 85%, 464 steps. Both learnt
  colour but not shape, which stayed at chance.)
  Pixel preprocessing in training is transformers' CLIPImageProcessorPil
  (size shortest_edge 64, crop 64x64, OpenAI mean/std) done with the same f32
  arithmetic in numpy; the script checks once that both agree exactly.

Export (--out, default assets/demo-model): model.half().save_pretrained ->
  config.json + model.safetensors (F16); preprocessor_config.json from the
  image processor; tokenizer_config.json (+ special_tokens_map.json if written)
  but not vocab.json/merges.txt/tokenizer.json (the runtime has the standard
  vocabulary built in). Rows of the token embedding for ids that never occurred
  in a training caption are set to exactly 0 before export (they never got a
  gradient; zeros compress in git). Then the exported F16 file is loaded back
  in float32 and evaluated zero-shot on HELDOUT_N held-out images; results and
  versions go to <out>/TRAINING.json.

Run (1 CPU thread, ~20-30 min on the shared machine):  python3 scripts/train_demo_model.py
  (the committed model: --time-budget 1620 --stop-at 0.97, which cut it at step 1764)
Pinned versions: VERSIONS below; other versions are refused unless --any-version.
"""
import argparse
import gzip
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import PIL
import torch
import torch.nn.functional as F
import transformers
from PIL import Image, ImageDraw

VERSIONS = {"torch": "2.15.0", "transformers": "5.24.0", "numpy": "2.4.6", "Pillow": "13.0.0",
            "open_clip_torch": "3.3.0"}
SEED = 20261129
HELDOUT_SEED = 777001  # held-out images: np.random.default_rng([HELDOUT_SEED, i])
HELDOUT_N = 1000

SIZE = 64
SS = 2  # supersampling factor for anti-aliased drawing

SHAPES = ["circle", "square", "triangle", "star", "diamond", "cross"]
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
           "diamond": "diamonds", "cross": "crosses"}
COLOURS = {
    "red": (220, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 35),
    "green": (40, 165, 55),
    "blue": (35, 75, 225),
    "purple": (135, 45, 185),
    "pink": (250, 135, 195),
}
COLOUR_NAMES = list(COLOURS)
POSITIONS = {"left": "on the left", "right": "on the right", "top": "at the top",
             "bottom": "at the bottom", "center": "in the center"}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}

# Zero-shot evaluation: prompt ensemble (mean of L2-normalised text features
# over these templates, renormalised), as in the CLIP paper.
TEMPLATES = ["a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a drawing of a {}."]
LABEL_SETS = {
    "shape": list(SHAPES),
    "colour": list(COLOUR_NAMES),
    "colour_shape": [f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES],
}

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def default_bpe_gz():
    """CLIP's BPE merges as shipped by open_clip_torch (OpenAI's original file)."""
    import importlib.util
    spec = importlib.util.find_spec("open_clip")
    return os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")


# ----------------------------------------------------------------------------- tokenizer

def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable unicode char table (same order as CLIP's)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_tokenizer(dirpath, bpe_gz=None):
    """Standard CLIP tokenizer (49408 tokens) from open_clip's BPE file."""
    from transformers import CLIPTokenizer
    bpe_gz = bpe_gz or default_bpe_gz()
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    assert len(merges) == 48894
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    os.makedirs(dirpath, exist_ok=True)
    vf, mf = os.path.join(dirpath, "vocab.json"), os.path.join(dirpath, "merges.txt")
    with open(vf, "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(mf, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(vf, mf)
    ids = tok("a photo of a cat").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407], ids
    return tok


def make_image_processor():
    from transformers import CLIPImageProcessorPil
    return CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
                                 image_mean=OPENAI_MEAN, image_std=OPENAI_STD)


_MEAN = np.array(OPENAI_MEAN, dtype=np.float32).reshape(1, 1, 3)
_STD = np.array(OPENAI_STD, dtype=np.float32).reshape(1, 1, 3)


def normalise(images_u8):
    """[B,64,64,3] uint8 -> [B,3,64,64] f32, same arithmetic as CLIPImageProcessorPil
    on a 64x64 RGB image (resize and crop are identities there): transformers'
    numpy rescale multiplies in f64 by rescale_factor = 1/255 (f64) and rounds to
    f32; normalize then computes (x - mean) / std in f32 with f32 mean/std."""
    x = (images_u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------- data

def _jitter_colour(rng, base):
    f = rng.uniform(0.82, 1.08)
    return tuple(int(np.clip(c * f + rng.integers(-18, 19), 0, 255)) for c in base)


def _polygon(shape, cx, cy, r, rot, rng):
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        k = 0.8
    elif shape == "diamond":
        a = rng.uniform(0.6, 0.85)  # a rhombus, narrower than tall
        pts = [(0, -1), (a, 0), (0, 1), (-a, 0)]
        k = 1.0
    elif shape == "triangle":
        pts = [(math.cos(t), math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        k = 1.0
        cy += r * 0.15
    elif shape == "star":
        pts = []
        for i in range(10):
            t = -math.pi / 2 + i * math.pi / 5
            rr = 1.0 if i % 2 == 0 else 0.42
            pts.append((rr * math.cos(t), rr * math.sin(t)))
        k = 1.0
    elif shape == "cross":
        w = rng.uniform(0.3, 0.4)
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w),
               (-1, w), (-1, -w), (-w, -w)]
        k = 0.95
    else:
        raise ValueError(shape)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + r * k * (x * c - y * s), cy + r * k * (x * s + y * c)) for x, y in pts]


def _shape_mask(shape, cx, cy, r, rot, rng):
    m = Image.new("L", (SIZE * SS, SIZE * SS), 0)
    d = ImageDraw.Draw(m)
    if shape == "circle":
        e = rng.uniform(0.9, 1.0)
        d.ellipse([SS * (cx - r), SS * (cy - r * e), SS * (cx + r), SS * (cy + r * e)], fill=255)
    else:
        d.polygon([(SS * x, SS * y) for x, y in _polygon(shape, cx, cy, r, rot, rng)], fill=255)
    return m


def _texture_layer(texture, colour, rng):
    layer = Image.new("RGB", (SIZE * SS, SIZE * SS), colour)
    if texture == "plain":
        return layer
    dark = tuple(int(c * 0.45) for c in colour)
    d = ImageDraw.Draw(layer)
    if texture == "striped":
        period = SS * int(rng.integers(5, 8))
        width = period // 2
        horizontal = rng.random() < 0.5
        for p in range(-SIZE * SS, 2 * SIZE * SS, period):
            if horizontal:
                d.rectangle([0, p, SIZE * SS, p + width - 1], fill=dark)
            else:
                d.rectangle([p, 0, p + width - 1, SIZE * SS], fill=dark)
    else:  # dotted
        period = SS * int(rng.integers(5, 7))
        rad = SS * rng.uniform(1.2, 1.7)
        off = int(rng.integers(0, period))
        for y in range(off, SIZE * SS, period):
            for x in range(off, SIZE * SS, period):
                d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=dark)
    return layer


def sample_attributes(rng, train=False):
    """Random attributes. Held-out/fixture images use the default mix; training
    images (train=True) have more single large shapes (80% single, 75% of those
    large) so that shape is easier to see."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    count = int(rng.choice([1, 2, 3], p=[0.8, 0.1, 0.1] if train else [0.7, 0.15, 0.15]))
    if count == 1:
        size = "large" if rng.random() < (0.75 if train else 0.65) else "small"
    else:
        size = "small"
    position = POSITIONS_LIST[rng.integers(5)] if (count == 1 and size == "small") else None
    if size == "large" or rng.random() < 0.25:
        texture = ["plain", "striped", "dotted"][rng.choice(3, p=[0.6, 0.2, 0.2])]
    else:
        texture = "plain"
    return {"shape": shape, "colour": colour, "count": count, "size": size, "position": position,
            "texture": texture}


POSITIONS_LIST = list(POSITIONS)


def render(attrs, rng):
    """Draw an image for `attrs`; returns a 64x64 RGB PIL image."""
    # background: grey-ish, sometimes a vertical gradient
    g = int(rng.integers(15, 241))
    tint = rng.integers(-12, 13, size=3)
    bg = np.clip(g + tint, 0, 255).astype(np.float32)
    arr = np.broadcast_to(bg, (SIZE * SS, SIZE * SS, 3)).copy()
    if rng.random() < 0.3:
        ramp = np.linspace(-1, 1, SIZE * SS, dtype=np.float32)[:, None, None] * rng.uniform(15, 45)
        arr = np.clip(arr + ramp, 0, 255)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")

    shape, count, size = attrs["shape"], attrs["count"], attrs["size"]
    centres = []
    if count == 1:
        if size == "large":
            r = rng.uniform(15, 21)
            cx, cy = 32 + rng.uniform(-4, 4), 32 + rng.uniform(-4, 4)
        else:
            r = rng.uniform(6.5, 9.5)
            pos = attrs["position"]
            lo, hi = r + 2, 22
            mid = (26, 38)
            if pos == "left":
                cx, cy = rng.uniform(lo, hi), rng.uniform(*mid)
            elif pos == "right":
                cx, cy = 64 - rng.uniform(lo, hi), rng.uniform(*mid)
            elif pos == "top":
                cx, cy = rng.uniform(*mid), rng.uniform(lo, hi)
            elif pos == "bottom":
                cx, cy = rng.uniform(*mid), 64 - rng.uniform(lo, hi)
            else:
                cx, cy = rng.uniform(28, 36), rng.uniform(28, 36)
        centres.append((cx, cy, r))
    else:
        r = rng.uniform(6.5, 9.0)
        tries = 0
        while len(centres) < count:
            cx, cy = rng.uniform(r + 2, 62 - r), rng.uniform(r + 2, 62 - r)
            tries += 1
            if all((cx - x) ** 2 + (cy - y) ** 2 > (2 * r + 3) ** 2 for x, y, _ in centres) or tries > 200:
                centres.append((cx, cy, r))

    outline = rng.random() < 0.3
    base = COLOURS[attrs["colour"]]
    for cx, cy, r in centres:
        colour = _jitter_colour(rng, base)
        rot = 0.0 if shape == "circle" else (
            rng.uniform(0, 2 * math.pi) if shape == "star" else rng.uniform(-0.26, 0.26))
        mask = _shape_mask(shape, cx, cy, r, rot, rng)
        if outline:
            o = _shape_mask(shape, cx, cy, r + 1.2, rot, rng) if shape == "circle" else None
            if o is None:
                from PIL import ImageFilter
                o = mask.filter(ImageFilter.MaxFilter(5))
            img.paste((20, 20, 20), (0, 0), o)
        img.paste(_texture_layer(attrs["texture"], colour, rng), (0, 0), mask)
    img = img.resize((SIZE, SIZE), Image.Resampling.BOX)
    sigma = rng.uniform(0, 10)
    if sigma > 0.5:
        a = np.asarray(img).astype(np.float32) + rng.normal(0, sigma, (SIZE, SIZE, 3))
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
    return img


CAPTION_TEMPLATES = ["{}", "{}.", "a photo of {}.", "a picture of {}.", "an image of {}.",
                     "a drawing of {}.", "a rendering of {}.", "a photo of {}.", "there is {}.",
                     "{} on a plain background.", "a simple drawing of {}.", "an illustration of {}."]


def make_caption(attrs, rng):
    """A caption mentioning a random subset of `attrs`; returns (text, mentioned)."""
    m = {}
    # The shape is always named (colour is easy to learn and, when captions
    # could omit the shape, the model learnt colour only); colour in 70%.
    use_colour = rng.random() < 0.7
    use_shape = True
    if use_colour:
        m["colour"] = attrs["colour"]
    if use_shape:
        m["shape"] = attrs["shape"]
    if rng.random() < 0.3:
        m["size"] = attrs["size"]
    if attrs["texture"] != "plain" and rng.random() < 0.35:
        m["texture"] = attrs["texture"]
    elif attrs["texture"] == "plain" and rng.random() < 0.05:
        m["texture"] = "plain"
    if attrs["position"] and rng.random() < 0.35:
        m["position"] = attrs["position"]
    count = attrs["count"]
    if count == 1:
        if rng.random() < 0.15:
            det = "one"
        else:
            det = "a"
        m["count"] = 1
    else:
        if rng.random() < 0.8:
            det = COUNT_WORDS[count]
            m["count"] = count
        else:
            det = "some"
            m["count"] = "plural"
    words = [det]
    for k in ("size", "texture", "colour"):
        if k in m:
            words.append(m[k])
    if use_shape:
        words.append(attrs["shape"] if count == 1 else PLURALS[attrs["shape"]])
    else:
        noun = ["", "shape", "object", "thing"][rng.integers(4)] if count == 1 else \
            ["shapes", "objects", "things"][rng.integers(3)]
        if noun:
            words.append(noun)
    if "position" in m:
        words.append(POSITIONS[m["position"]])
    phrase = " ".join(words)
    text = CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))].format(phrase)
    return text, m


def consistent(mentioned, attrs):
    for k, v in mentioned.items():
        if k == "count":
            if v == "plural":
                if attrs["count"] < 2:
                    return False
            elif attrs["count"] != v:
                return False
        elif attrs.get(k) != v:
            return False
    return True


def _train_chunk(job):
    """Training images start..start+n-1; image i from np.random.default_rng([seed, 1, i])."""
    seed, start, n = job
    attrs, imgs = [], np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for k in range(n):
        rng = np.random.default_rng([seed, 1, start + k])
        a = sample_attributes(rng, train=True)
        imgs[k] = np.asarray(render(a, rng))
        attrs.append(a)
    return attrs, imgs


def make_train_set(seed, n, workers):
    """Fixed training set, generated once: (list of attrs, [n,64,64,3] uint8)."""
    jobs = [(seed, s, min(1000, n - s)) for s in range(0, n, 1000)]
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_train_chunk, jobs)
    else:
        parts = [_train_chunk(j) for j in jobs]
    return [a for p, _ in parts for a in p], np.concatenate([i for _, i in parts])


def heldout_example(i, seed=HELDOUT_SEED):
    rng = np.random.default_rng([seed, i])
    attrs = sample_attributes(rng)
    return attrs, render(attrs, rng)


# ----------------------------------------------------------------------------- model

def make_config(vision_width=128, vision_layers=4, patch_size=8):
    from transformers import CLIPConfig
    text = dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                bos_token_id=0, pad_token_id=1, eos_token_id=2, projection_dim=64)
    vision = dict(image_size=SIZE, patch_size=patch_size, num_channels=3, hidden_size=vision_width,
                  intermediate_size=4 * vision_width, num_hidden_layers=vision_layers, num_attention_heads=4, hidden_act="quick_gelu", projection_dim=64)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64,
                      logit_scale_init_value=math.log(1 / 0.07))


def feats(x):
    # transformers 5 returns BaseModelOutputWithPooling from get_*_features.
    return x if torch.is_tensor(x) else x.pooler_output


@torch.no_grad()
def label_text_features(model, tok, labels, templates=TEMPLATES):
    """[n_labels, d]: mean over templates of L2-normalised text features, renormalised."""
    texts = [t.format(l) for l in labels for t in templates]
    enc = tok(texts, padding="max_length", max_length=77, return_tensors="pt")
    f = feats(model.get_text_features(input_ids=enc.input_ids, attention_mask=enc.attention_mask))
    f = F.normalize(f.float(), dim=-1).view(len(labels), len(templates), -1).mean(1)
    return F.normalize(f, dim=-1)


def label_of(attrs, set_name):
    return {"shape": attrs["shape"], "colour": attrs["colour"],
            "colour_shape": f"{attrs['colour']} {attrs['shape']}"}[set_name]


@torch.no_grad()
def zero_shot_accuracy(model, tok, pixel_values, attrs_list):
    model.eval()
    img = F.normalize(feats(model.get_image_features(pixel_values=pixel_values)).float(), dim=-1)
    acc = {}
    for name, labels in LABEL_SETS.items():
        txt = label_text_features(model, tok, labels)
        pred = (img @ txt.T).argmax(-1).tolist()
        acc[name] = float(np.mean([labels[p] == label_of(a, name) for p, a in zip(pred, attrs_list)]))
    return acc


# ----------------------------------------------------------------------------- main

def check_versions(any_version):
    import importlib.metadata as md
    have = {k: md.version(k) for k in VERSIONS}
    have["torch"] = torch.__version__.split("+")[0]
    bad = {k: (have[k], v) for k, v in VERSIONS.items() if have[k] != v}
    if bad and not any_version:
        sys.exit(f"version mismatch (have, pinned): {bad}; pass --any-version to run anyway")
    return have


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="assets/demo-model")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--train-images", type=int, default=40000,
                    help="size of the fixed, pre-generated training set")
    ap.add_argument("--workers", type=int, default=2, help="processes generating the training set")
    ap.add_argument("--vision-width", type=int, default=128)
    ap.add_argument("--vision-layers", type=int, default=4)
    ap.add_argument("--patch-size", type=int, default=8)
    ap.add_argument("--stop-at", type=float, default=0.0,
                    help="stop early once validation shape and colour accuracy both reach this (0: never)")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds of training (0: none); the cosine schedule follows steps or time, whichever is further along")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; on the shared 2-core build machine 1 thread was ~5x faster than 2")
    ap.add_argument("--any-version", action="store_true")
    args = ap.parse_args()

    versions = check_versions(args.any_version)
    versions["python"] = platform.python_version()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from transformers import CLIPModel

    tokdir = tempfile.mkdtemp(prefix="clip-tok-")
    tok = build_tokenizer(tokdir)
    proc = make_image_processor()

    # The numpy normalisation must equal the image processor bit for bit.
    _, im = heldout_example(0, seed=args.seed + 1)
    ref = proc(images=[im], return_tensors="np")["pixel_values"]
    mine = normalise(np.asarray(im)[None])
    assert ref.dtype == np.float32 and np.array_equal(ref, mine), np.abs(ref - mine).max()
    print("numpy preprocessing == CLIPImageProcessorPil: exact", flush=True)

    t_gen = time.time()
    train_attrs, train_imgs = make_train_set(args.seed, args.train_images, args.workers)
    gen_seconds = time.time() - t_gen
    print(f"generated {len(train_attrs)} training images in {gen_seconds:.0f}s", flush=True)

    model = CLIPModel(make_config(args.vision_width, args.vision_layers, args.patch_size))
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}", flush=True)

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and "embedding" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6)

    def progress(s, elapsed):
        """Fraction of the run done: by steps, or by wall time if that is further."""
        p_steps = s / args.steps
        p_time = elapsed / args.time_budget if args.time_budget else 0.0
        return max(p_steps, p_time), ("time" if p_time > p_steps else "steps")

    def lr_at(s, elapsed):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        p, _ = progress(s, elapsed)
        p0 = args.warmup / args.steps
        t = (p - p0) / max(1e-9, 1 - p0)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, t))))

    # small in-training validation set (own seed, distinct from the final held-out set)
    val = [heldout_example(i, seed=args.seed + 2) for i in range(400)]
    val_px = torch.from_numpy(normalise(np.stack([np.asarray(im) for _, im in val])))
    val_attrs = [a for a, _ in val]

    seen_in_training = set()
    caption_cache = {}
    history = []
    t0 = time.time()
    step = 0
    loss_ema = None
    stopped = "steps"
    while True:
        p, by = progress(step, time.time() - t0)
        if p >= 1.0:
            stopped = "time budget" if by == "time" else "steps"
            break
        rng = np.random.default_rng([args.seed, 0, step])
        idx = np.sort(rng.choice(len(train_attrs), args.batch, replace=False))
        attrs = [train_attrs[i] for i in idx]
        imgs = train_imgs[idx]
        caps = [make_caption(a, rng) for a in attrs]
        ids = []
        for text, _ in caps:
            if text not in caption_cache:
                caption_cache[text] = tok(text).input_ids
            ids.append(caption_cache[text])
        L = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), L), 49407, dtype=torch.long)
        mask = torch.zeros((len(ids), L), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, :len(x)] = torch.tensor(x)
            mask[i, :len(x)] = 1
            seen_in_training.update(x)
        # positives: caption j is a positive of image i if everything it says is true of i
        pos = torch.tensor([[consistent(m, a) for _, m in caps] for a in attrs], dtype=torch.float32)

        for g in opt.param_groups:
            g["lr"] = lr = lr_at(step, time.time() - t0)
        px = torch.from_numpy(normalise(imgs))
        img_f = F.normalize(feats(model.get_image_features(pixel_values=px)), dim=-1)
        txt_f = F.normalize(feats(model.get_text_features(input_ids=input_ids, attention_mask=mask)), dim=-1)
        logits = model.logit_scale.exp() * img_f @ txt_f.T
        t_i2t = pos / pos.sum(1, keepdim=True)
        t_t2i = pos.T / pos.T.sum(1, keepdim=True)
        loss = 0.5 * (-(t_i2t * logits.log_softmax(1)).sum(1).mean()
                      - (t_t2i * logits.T.log_softmax(1)).sum(1).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if step % 20 == 0:
            print(f"step {step:5d}  loss {loss.item():.4f} (ema {loss_ema:.4f})  "
                  f"scale {model.logit_scale.exp().item():6.2f}  lr {lr:.2e}  "
                  f"{time.time() - t0:6.0f}s", flush=True)
        if step % args.eval_every == 0:
            acc = zero_shot_accuracy(model, tok, val_px, val_attrs)
            model.train()
            history.append({"step": step, "lr": lr, "loss_ema": round(loss_ema, 4), "seconds": round(time.time() - t0, 1),
                            **{f"val_{k}": v for k, v in acc.items()}})
            print(f"  val zero-shot @ {step}: {acc}", flush=True)
            if args.stop_at and acc["shape"] >= args.stop_at and acc["colour"] >= args.stop_at:
                stopped = f"validation shape and colour >= {args.stop_at}"
                break
    train_seconds = time.time() - t0
    print(f"trained {step} steps in {train_seconds:.0f}s (stopped by {stopped})", flush=True)

    # ---- export
    out = args.out
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f != "README.md":
            os.remove(os.path.join(out, f))
    unused = sorted(set(range(49408)) - seen_in_training)
    prompt_tokens = {i for t in TEMPLATES for l in sum(LABEL_SETS.values(), []) for i in tok(t.format(l)).input_ids}
    assert prompt_tokens <= seen_in_training, sorted(prompt_tokens - seen_in_training)
    with torch.no_grad():
        model.text_model.embeddings.token_embedding.weight[unused] = 0.0
    model.eval()
    model.half().save_pretrained(out)
    proc.save_pretrained(out)
    with tempfile.TemporaryDirectory() as td:
        tok.save_pretrained(td)
        for f in ("tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(td, f)):
                shutil.copy(os.path.join(td, f), os.path.join(out, f))

    # ---- evaluate the exported F16 weights, loaded back in float32, the way a user would
    m2 = CLIPModel.from_pretrained(out).float().eval()
    from transformers import CLIPImageProcessorPil
    proc2 = CLIPImageProcessorPil.from_pretrained(out)  # = AutoImageProcessor(..., backend="pil")
    held = [heldout_example(i) for i in range(HELDOUT_N)]
    px = proc2(images=[im for _, im in held], return_tensors="pt")["pixel_values"]
    acc = zero_shot_accuracy(m2, tok, px, [a for a, _ in held])
    print(f"held-out zero-shot (exported F16 -> f32, {HELDOUT_N} images): {acc}", flush=True)

    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    info = {
        "script": "scripts/train_demo_model.py",
        "seed": args.seed,
        "heldout_seed": HELDOUT_SEED,
        "heldout_images": HELDOUT_N,
        "versions": versions,
        "threads": args.threads,
        "args": vars(args),
        "steps": step,
        "stopped_by": stopped,
        "batch": args.batch,
        "images_seen": step * args.batch,
        "train_images": len(train_attrs),
        "train_set_generation_seconds": round(gen_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "seconds_per_step": round(train_seconds / max(1, step), 3),
        "final_loss": round(loss.item(), 4),
        "final_loss_ema": round(loss_ema, 4),
        "logit_scale": float(m2.logit_scale.item()),
        "parameters": n_params,
        "token_rows_kept": 49408 - len(unused),
        "templates": TEMPLATES,
        "label_sets": LABEL_SETS,
        "heldout_accuracy": acc,
        "validation_history": history,
        "file_sizes": sizes,
    }
    with open(os.path.join(out, "TRAINING.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: info[k] for k in ("steps", "train_seconds", "final_loss", "heldout_accuracy",
                                           "file_sizes")}, indent=1))


if __name__ == "__main__":
    main()
