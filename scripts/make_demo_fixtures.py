#!/usr/bin/env python3
"""Reference outputs of the embedded demo model, for the Rust side to match.

Reads the exported demo model (assets/demo-model, written by
scripts/train_demo_model.py) and writes:

  tests/fixtures/demo/NN-<colour>-<shape>.png   60 held-out generated images
  tests/fixtures/demo/labels.json   true labels per image, the label sets and
                                    the prompt templates
  tests/fixtures/demo/reference.json  what transformers computes from the PNG
                                    files as saved (see below)
  examples/images/*.png             a few sample images; each is re-rendered
                                    with the next seed (up to 20 times) until
                                    the model's top label from
                                    examples/labels.txt is right, i.e. they
                                    are picked, not a random sample
  examples/labels.txt               default label list (--example-labels: the
                                    42 colour+shape labels by default; the
                                    examples are single shapes because the
                                    model got "two blue squares" and "three
                                    purple diamonds" wrong in all 20 renderings)

Reference computation (PyTorch, float32, CPU), the path a user would take:
  model     = CLIPModel.from_pretrained("assets/demo-model").float()  (F16 file)
  images    = PIL.Image.open(png).convert("RGB") ->
              CLIPImageProcessorPil.from_pretrained("assets/demo-model")
              (= AutoImageProcessor.from_pretrained(dir, backend="pil"))
  prompts   = template.format(label) for each of TEMPLATES, tokenized with the
              standard CLIP tokenizer (built from open_clip's BPE file), padded
              to 77 with <|endoftext|>
  label vec = normalize(mean over templates of normalize(get_text_features))
  logits    = exp(logit_scale) * normalize(get_image_features) . label vec
  probs     = softmax(logits) over one label set

Images: image i uses attributes from np.random.default_rng([FIXTURE_SEED, i])
(shape and colour overridden to cycle through all 42 combinations), so they
are disjoint from training (seed 20261129) and from the held-out set.

Usage: python3 scripts/make_demo_fixtures.py [--model assets/demo-model]
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_demo_model as T  # noqa: E402

FIXTURE_SEED = 424242
N_FIXTURES = 60
EXAMPLE_SEED = 515151
# (file name, attributes) of the sample images in examples/images/
EXAMPLES = [
    ("red-circle", dict(shape="circle", colour="red", count=1, size="large", position=None, texture="plain")),
    ("blue-square", dict(shape="square", colour="blue", count=1, size="large", position=None,
                         texture="plain")),
    ("small-yellow-star-on-the-left", dict(shape="star", colour="yellow", count=1, size="small",
                                           position="left", texture="plain")),
    ("striped-green-triangle", dict(shape="triangle", colour="green", count=1, size="large", position=None,
                                    texture="striped")),
    ("purple-diamond", dict(shape="diamond", colour="purple", count=1, size="large", position=None,
                            texture="plain")),
    ("orange-cross", dict(shape="cross", colour="orange", count=1, size="large", position=None,
                          texture="plain")),
    ("dotted-pink-circle", dict(shape="circle", colour="pink", count=1, size="large", position=None,
                                texture="dotted")),
    ("small-blue-triangle-at-the-top", dict(shape="triangle", colour="blue", count=1, size="small",
                                            position="top", texture="plain")),
]


def f32list(t):
    return [float(x) for x in t.detach().float().reshape(-1).numpy().astype(np.float32)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="assets/demo-model")
    ap.add_argument("--out", default="tests/fixtures/demo")
    ap.add_argument("--examples", default="examples")
    ap.add_argument("--heldout", type=int, default=T.HELDOUT_N)
    ap.add_argument("--example-labels", default="colour_shape", choices=sorted(T.LABEL_SETS),
                    help="label set written to examples/labels.txt and used to check the examples")
    ap.add_argument("--any-version", action="store_true")
    args = ap.parse_args()
    versions = T.check_versions(args.any_version)
    torch.set_num_threads(2)

    from transformers import CLIPImageProcessorPil, CLIPModel
    model = CLIPModel.from_pretrained(args.model).float().eval()
    proc = CLIPImageProcessorPil.from_pretrained(args.model)
    tok = T.build_tokenizer(tempfile.mkdtemp(prefix="clip-tok-"))
    scale = model.logit_scale.exp().item()

    text = {name: T.label_text_features(model, tok, labels) for name, labels in T.LABEL_SETS.items()}

    @torch.no_grad()
    def classify(pil_images):
        px = proc(images=pil_images, return_tensors="pt")["pixel_values"]
        feats = T.feats(model.get_image_features(pixel_values=px))
        img = F.normalize(feats, dim=-1)
        probs = {name: (scale * img @ txt.T).softmax(-1) for name, txt in text.items()}
        return px, feats, probs

    # ---- fixtures
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".png"):
            os.remove(os.path.join(args.out, f))
    items = []
    for i in range(N_FIXTURES):
        rng = np.random.default_rng([FIXTURE_SEED, i])
        attrs = T.sample_attributes(rng)
        attrs["shape"] = T.SHAPES[i % len(T.SHAPES)]
        attrs["colour"] = T.COLOUR_NAMES[i % len(T.COLOUR_NAMES)]
        im = T.render(attrs, rng)
        name = f"{i:02d}-{attrs['colour']}-{attrs['shape']}.png"
        im.save(os.path.join(args.out, name), optimize=True)
        items.append((name, attrs))
    loaded = [Image.open(os.path.join(args.out, n)).convert("RGB") for n, _ in items]
    px, feats, probs = classify(loaded)

    labels_json = {
        "description": "Held-out generated images for the embedded demo model; see scripts/make_demo_fixtures.py",
        "templates": T.TEMPLATES,
        "ensemble": "label vector = L2-normalise(mean over templates of L2-normalised get_text_features)",
        "label_sets": T.LABEL_SETS,
        "images": [{"file": n, "shape": a["shape"], "colour": a["colour"],
                    "colour_shape": T.label_of(a, "colour_shape"), "count": a["count"], "size": a["size"],
                    "position": a["position"], "texture": a["texture"]} for n, a in items],
    }
    correct = {name: 0 for name in T.LABEL_SETS}
    per_image = []
    for k, (n, a) in enumerate(items):
        entry = {"file": n,
                 "pixel_values_sum": float(px[k].double().sum()),
                 "pixel_values_sum_sq": float((px[k].double() ** 2).sum()),
                 "image_features": f32list(feats[k])}
        for name, labels in T.LABEL_SETS.items():
            p = probs[name][k]
            pred = labels[int(p.argmax())]
            correct[name] += pred == T.label_of(a, name)
            entry[name] = {"probs": f32list(p), "predicted": pred, "true": T.label_of(a, name)}
        per_image.append(entry)

    prompts = {name: {l: [tok(t.format(l), padding="max_length", max_length=77).input_ids[:12]
                          for t in T.TEMPLATES] for l in labels} for name, labels in T.LABEL_SETS.items()}

    # larger held-out set (same as TRAINING.json's), Python only
    held = [T.heldout_example(i) for i in range(args.heldout)]
    _, _, hprobs = classify([im for _, im in held])
    held_acc = {name: float(np.mean([labels[int(j)] == T.label_of(a, name)
                                     for j, (a, _) in zip(hprobs[name].argmax(-1), held)]))
                for name, labels in T.LABEL_SETS.items()}

    reference = {
        "description": "transformers' outputs for tests/fixtures/demo/*.png with assets/demo-model "
                       "(F16 weights loaded as float32), CPU; see scripts/make_demo_fixtures.py",
        "versions": versions,
        "model": args.model,
        "preprocessor": proc.to_dict(),
        "templates": T.TEMPLATES,
        "logit_scale": float(model.logit_scale.item()),
        "logit_scale_exp": scale,
        "label_sets": T.LABEL_SETS,
        "prompt_input_ids_first12": prompts,
        "text_features": {name: {l: f32list(v) for l, v in zip(T.LABEL_SETS[name], text[name])}
                          for name in T.LABEL_SETS},
        "images": per_image,
        "accuracy_fixtures": {name: correct[name] / N_FIXTURES for name in T.LABEL_SETS},
        "accuracy_heldout": held_acc,
        "heldout": {"seed": T.HELDOUT_SEED, "images": args.heldout},
    }
    with open(os.path.join(args.out, "labels.json"), "w") as f:
        json.dump(labels_json, f, indent=1)
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)
    print("fixture accuracy:", reference["accuracy_fixtures"])
    print("held-out accuracy:", held_acc)

    # ---- examples (first seed at which the model tags the image correctly)
    img_dir = os.path.join(args.examples, "images")
    os.makedirs(img_dir, exist_ok=True)
    labels = T.LABEL_SETS[args.example_labels]
    with open(os.path.join(args.examples, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")
    for e, (name, attrs) in enumerate(EXAMPLES):
        want = T.label_of(attrs, args.example_labels)
        for j in range(20):
            im = T.render(attrs, np.random.default_rng([EXAMPLE_SEED, e, j]))
            path = os.path.join(img_dir, name + ".png")
            im.save(path, optimize=True)
            _, _, p = classify([Image.open(path).convert("RGB")])
            p = p[args.example_labels][0]
            top = labels[int(p.argmax())]
            if top == want:
                print(f"example {name}: {top} ({p.max():.2f}), rendering attempt {j}")
                break
        else:
            print(f"example {name}: never tagged correctly, last: {top}")


if __name__ == "__main__":
    main()
