#!/usr/bin/env python3
"""Big-model-shaped CLIP fixtures whose weights are described, not stored.

Seeded and re-runnable. Writes, under tests/fixtures/families/ (committed, small):
  l14-336-hf/          transformers CLIPModel, openai/clip-vit-large-patch14-336 shapes, 2+2 layers
  h14-hf/              transformers CLIPModel, laion/CLIP-ViT-H-14-laion2B-s32B-b79K shapes, 2+2 layers
  h14-open_clip/       open_clip CLIP from open_clip's 'ViT-H-14' config, 2+2 layers, open_clip names
  variants-open_clip/  tiny open_clip CLIP with LayerScale, no ln_pre, text pool 'last', no text
                       projection, LayerNorm eps 1e-6
each holding
  manifest.json           how to regenerate every weight and pixel input (see below)
  config.json             (transformers, as save_pretrained writes it) or
  open_clip_config.json   (open_clip, as open_clip/push_to_hf_hub.py's save_config_for_hf writes it)
  reference.safetensors   input ids (int64) and the reference implementation's outputs (float32)
  README.md
and families/VERSIONS.json.

Why: the real checkpoints are 0.4-4 GB, and even 2-layer cuts are ~100-250 MB, far too big to
commit. So the weights are NOT stored: manifest.json describes a deterministic integer-hash
generator for every tensor of the checkpoint, the Rust tests regenerate exactly the same
values, write them as a safetensors file (manifest "weights_file": model.safetensors or
open_clip_model.safetensors) into a temp dir next to the config file, load that through the
normal loading path and compare with reference.safetensors. Every expected value comes from
running transformers' modeling_clip (eager attention) or open_clip on exactly those weights,
CPU, float32, eval mode, one thread.

Generator "clip-fixture-hash-v1" (u64 arithmetic wrapping mod 2^64):
  MUL = 0x9E3779B97F4A7C15
  mix(z):  z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
  tensor t (0-based position in manifest "tensors"), element i (0-based, row-major):
    key = mix(seed + (t + 1) * MUL);  z = mix(key + i * MUL);  k = (z >> 53) - 1024   (in [-1024, 1023])
    value = float32(offset + k * scale)   (computed exactly in f64, then rounded to f32; with the
                                           scales used here it is exact in f32)
  seed = manifest "seed"; pixel inputs use manifest inputs.seed and t = position in
  inputs.pixel_values. "check" holds the first 8 values of one tensor (the first one in the list
  with >= 8 elements and a non-zero scale) so a generator mismatch is caught up front.

Scale rule (all powers of two, so offset-0 values are exact in float16; activations stay O(1)
and a kernel bug shows as a large error):
  weight matrix / conv with fan_in n   scale = 2^round(log2(1.7 / (1024 * sqrt(n))))  (std ~ 1/sqrt(n))
      n = product of all dims but the first; for open_clip's text_projection and visual.proj,
      stored [in, out], n = the first dim
  layer-norm weight                    offset 1.0, scale 2^-12   (1 +- 0.25)
  layer-norm bias and all other biases scale 2^-13               (+- 0.125)
  token / position / class embeddings  scale 2^-10               (+- 1)
  LayerScale gamma (ls_1/ls_2.gamma)   scale 2^-11               (+- 0.5)
  logit_scale                          scale 0, offset 2.5
  pixel inputs                         scale 2^-9                (+- 2)
Tensors with offset 0 and >= 2 dims are "F16" in the manifest (exact; halves the temp files),
the rest "F32". The tensor list is exactly the persistent state dict (transformers: the keys
save_pretrained writes; open_clip: model.state_dict()), sorted by name; the generated weights
are loaded with load_state_dict(strict=True) and checked bit for bit after loading.

Text inputs: three real CLIP tokenizations (lengths 5, 9, 16). transformers fixtures get them
padded to 16 with 49407 plus attention_mask (as CLIPTokenizer pads); open_clip fixtures get them
padded with 0 to the context length (as open_clip.tokenize does).

Usage: python3 scripts/make_family_fixtures.py [--out tests/fixtures/families] [--any-version]
Pinned: see VERSIONS below; the script refuses other versions unless --any-version.
"""
import argparse
import copy
import json
import logging
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile

import numpy as np
import open_clip
import torch
import transformers
from open_clip.push_to_hf_hub import save_config_for_hf
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

VERSIONS = {"transformers": "5.24.0", "torch": "2.15.0", "open_clip_torch": "3.3.0"}
SEED = 20261129
GENERATOR = "clip-fixture-hash-v1"
SCRIPT = "scripts/make_family_fixtures.py"

# ---------------------------------------------------------------- the generator

M64 = (1 << 64) - 1
MUL = 0x9E3779B97F4A7C15
CHUNK = 1 << 22


def mix_int(z):
    z &= M64
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & M64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return z


def _mix_np(z):
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def generate(seed, t, shape, scale, offset):
    """float32 array of `shape`: tensor number t of the generator seeded with `seed`."""
    n = math.prod(shape)
    key = np.uint64(mix_int(seed + (t + 1) * MUL))
    out = np.empty(n, dtype=np.float32)
    with np.errstate(over="ignore"):
        for start in range(0, n, CHUNK):
            i = np.arange(start, min(n, start + CHUNK), dtype=np.uint64)
            z = _mix_np(key + i * np.uint64(MUL))
            k = (z >> np.uint64(53)).astype(np.int64) - 1024
            out[start:start + len(i)] = (offset + k.astype(np.float64) * scale).astype(np.float32)
    return out.reshape(shape)


def _pow2(e):
    assert 0 <= e <= 24, e
    return 2.0 ** -e


def matrix_scale(fan_in):
    return _pow2(-round(math.log2(1.7 / (1024 * math.sqrt(fan_in)))))


LN = re.compile(r"(layer_norm|layernorm|layrnorm|(^|\.)ln_(1|2|pre|post|final)\.)")
EMBEDDINGS = ("text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
              "vision_model.embeddings.class_embedding", "vision_model.embeddings.position_embedding.weight",
              "token_embedding.weight", "positional_embedding", "visual.class_embedding",
              "visual.positional_embedding")
IN_OUT = ("text_projection", "visual.proj")  # open_clip: stored [in, out], used as x @ W


def scale_offset(name, shape):
    """(scale, offset) for one state-dict entry; see the rule in the module docstring."""
    if name == "logit_scale":
        return 0.0, 2.5
    if LN.search(name):
        if name.endswith("weight"):
            return _pow2(12), 1.0
        assert name.endswith("bias"), name
        return _pow2(13), 0.0
    if name.endswith("bias"):
        return _pow2(13), 0.0
    if name in EMBEDDINGS:
        return _pow2(10), 0.0
    if name.endswith(("ls_1.gamma", "ls_2.gamma")):
        return _pow2(11), 0.0
    if len(shape) >= 2:
        fan_in = shape[0] if name in IN_OUT else math.prod(shape[1:])
        return matrix_scale(fan_in), 0.0
    raise ValueError(f"no scale rule for {name} {shape}")


def describe(state_dict):
    """Manifest tensor list for a state dict (sorted by name)."""
    tensors = []
    for name in sorted(state_dict):
        shape = list(state_dict[name].shape)
        assert state_dict[name].dtype == torch.float32, (name, state_dict[name].dtype)
        scale, offset = scale_offset(name, shape)
        dtype = "F16" if offset == 0.0 and len(shape) >= 2 else "F32"
        tensors.append({"name": name, "shape": shape, "dtype": dtype, "scale": scale, "offset": offset})
    return tensors


def materialize(seed, tensors):
    """name -> float32 torch tensor with exactly the generated values."""
    out = {}
    for t, d in enumerate(tensors):
        v = generate(seed, t, d["shape"], d["scale"], d["offset"])
        if d["dtype"] == "F16":
            assert np.array_equal(v.astype(np.float16).astype(np.float32), v), d["name"]
        out[d["name"]] = torch.from_numpy(v)
    return out


def check_entry(seed, tensors):
    t = next(i for i, d in enumerate(tensors) if d["scale"] != 0.0 and math.prod(d["shape"]) >= 8)
    first = generate(seed, t, [8], tensors[t]["scale"], tensors[t]["offset"])
    return {"tensor": t, "first_values": [float(x) for x in first]}


def weights_file(tensors, weights):
    """The weights as the Rust test writes them (dtype from the manifest)."""
    return {d["name"]: (weights[d["name"]].half() if d["dtype"] == "F16" else weights[d["name"]]).contiguous()
            for d in tensors}


def load_exact(model, weights):
    model.load_state_dict(weights, strict=True)
    sd = model.state_dict()
    assert set(sd) == set(weights), set(sd) ^ set(weights)
    for name, v in weights.items():
        got = sd[name]
        assert got.dtype == torch.float32 and got.shape == v.shape, name
        assert torch.equal(got.view(torch.int32), v.view(torch.int32)), f"{name} not bit-exact after loading"


def pixel_inputs(seed, specs):
    out = {}
    for t, d in enumerate(specs):
        out[d["name"]] = torch.from_numpy(generate(seed, t, d["shape"], d["scale"], d["offset"]))
    return out


# ---------------------------------------------------------------- inputs

# open_clip.tokenize of "a red car", "a photo of a cat on grass",
# "a close up photo of a small brown dog sitting on a wooden bench" (checked below).
SENTENCES = ["a red car", "a photo of a cat on grass",
             "a close up photo of a small brown dog sitting on a wooden bench"]
TOKENS = [
    [49406, 320, 736, 1615, 49407],
    [49406, 320, 1125, 539, 320, 2368, 525, 5922, 49407],
    [49406, 320, 2660, 705, 1125, 539, 320, 2442, 2866, 1929, 4919, 525, 320, 9057, 8771, 49407],
]


def hf_text_inputs():
    seq = max(len(t) for t in TOKENS)
    ids = torch.full((len(TOKENS), seq), 49407, dtype=torch.int64)
    mask = torch.zeros((len(TOKENS), seq), dtype=torch.int64)
    for i, t in enumerate(TOKENS):
        ids[i, :len(t)] = torch.tensor(t)
        mask[i, :len(t)] = 1
    return ids, mask


def open_clip_text_inputs(context_length):
    ids = torch.zeros((len(TOKENS), context_length), dtype=torch.int64)
    for i, t in enumerate(TOKENS):
        ids[i, :len(t)] = torch.tensor(t)
    assert torch.equal(ids, open_clip.tokenize(SENTENCES, context_length=context_length).to(torch.int64))
    return ids


def pixel_spec(name, shape):
    return {"name": name, "shape": list(shape), "scale": _pow2(9), "offset": 0.0}


# ---------------------------------------------------------------- writing

def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def save_ref(path, ref):
    tensors = {}
    for k, v in ref.items():
        v = v.detach().clone().contiguous()
        tensors[k] = v.to(torch.int64) if not v.is_floating_point() else v.to(torch.float32)
        assert torch.isfinite(tensors[k].float()).all(), k
    # One metadata key: safetensors writes metadata from a hash map, so several keys would come out
    # in a different order on every run and the file would not be byte-identical across reruns.
    meta = {"open_clip": open_clip.__version__, "script": SCRIPT, "torch": torch.__version__,
            "transformers": transformers.__version__}
    save_file(tensors, path, metadata={"source": json.dumps(meta, sort_keys=True)})


def write_manifest(d, seed, weights_name, tensors, input_seed, pixels):
    write_json(os.path.join(d, "manifest.json"), {
        "generator": GENERATOR, "seed": seed, "weights_file": weights_name, "tensors": tensors,
        "check": check_entry(seed, tensors),
        "inputs": {"seed": input_seed, "pixel_values": pixels}})


def write_readme(d, lines):
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n\nWritten by `" + SCRIPT + "`; weights are regenerated from "
                "`manifest.json` (see the script's docstring), not stored.\n")


def summary(ref):
    return ", ".join(f"{k} {list(v.shape)}" for k, v in ref.items())


def hf_fixture(out_dir, name, seed, text_kw, vision_kw, projection_dim, pixels, readme):
    d = os.path.join(out_dir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg = CLIPConfig(text_config=text_kw, vision_config=vision_kw, projection_dim=projection_dim,
                     attn_implementation="eager")
    model = CLIPModel(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        with safe_open(os.path.join(tmp, "model.safetensors"), "pt") as f:
            saved = set(f.keys())
        shutil.copy(os.path.join(tmp, "config.json"), d)
    assert saved == set(model.state_dict()), saved ^ set(model.state_dict())
    tensors = describe(model.state_dict())
    weights = materialize(seed, tensors)
    load_exact(model, weights)

    input_seed = seed + 1
    px = pixel_inputs(input_seed, pixels)
    ids, mask = hf_text_inputs()
    ref = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        t = model.get_text_features(input_ids=ids, attention_mask=mask)
        t = t if torch.is_tensor(t) else t.pooler_output  # transformers 5: projected features in pooler_output
        assert torch.equal(t, model.text_projection(model.text_model(input_ids=ids, attention_mask=mask).pooler_output))
        assert t.shape == (len(TOKENS), projection_dim)
        ref["text_embeds"] = t
        i = model.get_image_features(pixel_values=px["pixel_values"])
        i = i if torch.is_tensor(i) else i.pooler_output
        assert torch.equal(i, model.visual_projection(model.vision_model(pixel_values=px["pixel_values"]).pooler_output))
        assert i.shape == (px["pixel_values"].shape[0], projection_dim)
        ref["image_embeds"] = i
        if "pixel_values_336" in px:
            j = model.get_image_features(pixel_values=px["pixel_values_336"], interpolate_pos_encoding=True)
            j = j if torch.is_tensor(j) else j.pooler_output
            assert j.shape == (px["pixel_values_336"].shape[0], projection_dim)
            ref["image_embeds_336_interpolated"] = j
        else:
            out = model(input_ids=ids, attention_mask=mask, pixel_values=px["pixel_values"])
            ref["logits_per_image"] = out.logits_per_image

        # Cross-check: the weights file as the Rust test writes it (F16/F32 per the manifest) next to
        # config.json loads through from_pretrained and gives bit-identical outputs.
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(d, "config.json"), tmp)
            save_file(weights_file(tensors, weights), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
            m2 = CLIPModel.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager").eval()
            t2 = m2.get_text_features(input_ids=ids, attention_mask=mask)
            i2 = m2.get_image_features(pixel_values=px["pixel_values"])
            assert torch.equal(t2 if torch.is_tensor(t2) else t2.pooler_output, ref["text_embeds"])
            assert torch.equal(i2 if torch.is_tensor(i2) else i2.pooler_output, ref["image_embeds"])
            del m2

    save_ref(os.path.join(d, "reference.safetensors"), ref)
    write_manifest(d, seed, "model.safetensors", tensors, input_seed, pixels)
    write_readme(d, readme + ["", "reference.safetensors: " + summary(ref) + ".",
                              "Pixel inputs (regenerated): " + ", ".join(f"{p['name']} {p['shape']}" for p in pixels) + "."])
    print("wrote", d, f"({sum(math.prod(t['shape']) for t in tensors) / 1e6:.1f}M parameters)")
    return ref


def open_clip_model(model_cfg, weights_dir=None):
    """Build through open_clip's own 'local-dir:' path (as for a hub export), so the config and
    preprocess cfg are exactly what open_clip makes of open_clip_config.json."""
    with tempfile.TemporaryDirectory() as tmp:
        if weights_dir is None:
            write_json(os.path.join(tmp, "open_clip_config.json"), {"model_cfg": model_cfg})
            src = tmp
        else:
            src = weights_dir
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # "no weights found / initialized randomly"
        try:
            model = open_clip.create_model("local-dir:" + src, precision="fp32", device="cpu")
        finally:
            logging.getLogger().setLevel(level)
    assert type(model) is open_clip.CLIP, type(model)
    return model.eval()


def open_clip_fixture(out_dir, name, seed, model_cfg, pixels, readme):
    d = os.path.join(out_dir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model = open_clip_model(copy.deepcopy(model_cfg))
    save_config_for_hf(model, pathlib.Path(d) / "open_clip_config.json", model_config=model_cfg)
    tensors = describe(model.state_dict())
    weights = materialize(seed, tensors)
    load_exact(model, weights)

    input_seed = seed + 1
    px = pixel_inputs(input_seed, pixels)
    ids = open_clip_text_inputs(model.context_length)
    ref = {"input_ids": ids}
    with torch.no_grad():
        ref["text_embeds"] = model.encode_text(ids)
        ref["image_embeds"] = model.encode_image(px["pixel_values"])
        assert ref["text_embeds"].shape == (len(TOKENS), model_cfg["embed_dim"])
        assert ref["image_embeds"].shape == (px["pixel_values"].shape[0], model_cfg["embed_dim"])
        # Cross-check: open_clip_config.json + the weights file as the Rust test writes it load through
        # open_clip's own loader (strict) and give bit-identical outputs.
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(d, "open_clip_config.json"), tmp)
            save_file(weights_file(tensors, weights), os.path.join(tmp, "open_clip_model.safetensors"))
            m2 = open_clip_model(None, weights_dir=tmp)
            norm = lambda c: json.loads(json.dumps(c))  # tuples vs lists
            assert norm(m2.visual.preprocess_cfg) == norm(model.visual.preprocess_cfg)
            assert torch.equal(m2.encode_text(ids), ref["text_embeds"])
            assert torch.equal(m2.encode_image(px["pixel_values"]), ref["image_embeds"])
            del m2

    save_ref(os.path.join(d, "reference.safetensors"), ref)
    write_manifest(d, seed, "open_clip_model.safetensors", tensors, input_seed, pixels)
    write_readme(d, readme + ["", "reference.safetensors: " + summary(ref) + " (encode_text / encode_image, "
                              "not normalised).",
                              "Pixel inputs (regenerated): " + ", ".join(f"{p['name']} {p['shape']}" for p in pixels) + "."])
    print("wrote", d, f"({sum(math.prod(t['shape']) for t in tensors) / 1e6:.1f}M parameters)")
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "families"))
    ap.add_argument("--any-version", action="store_true")
    args = ap.parse_args()
    found = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
             "open_clip_torch": open_clip.__version__}
    if found != VERSIONS and not args.any_version:
        sys.exit(f"pinned {VERSIONS}, found {found} (use --any-version to override)")
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)  # fixed reduction order, so reruns are byte-identical
    torch.manual_seed(SEED)   # nothing random is used; model init is overwritten entirely
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    refs = {}

    # openai/clip-vit-large-patch14-336, 2 layers per tower. Token ids in config as openai's
    # config.json has them (bos 0, eos 2, pad 1: transformers' legacy argmax pooling).
    refs["l14-336-hf"] = hf_fixture(
        out, "l14-336-hf", SEED * 100 + 1,
        dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
             num_hidden_layers=2, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
             bos_token_id=0, eos_token_id=2, pad_token_id=1),
        dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=2,
             patch_size=14, image_size=336, hidden_act="quick_gelu", projection_dim=768),
        768, [pixel_spec("pixel_values", (2, 3, 336, 336))],
        ["# l14-336-hf", "",
         "transformers `CLIPModel` with the shapes of openai/clip-vit-large-patch14-336 cut to 2 layers per "
         "tower (text 768/3072/12 heads, vision 1024/4096/16 heads, patch 14, 336 px, quick_gelu, "
         "projection 768)."])

    # laion/CLIP-ViT-H-14-laion2B-s32B-b79K, 2 layers per tower; token ids left at transformers'
    # defaults (eos 49407: first-eos pooling).
    refs["h14-hf"] = hf_fixture(
        out, "h14-hf", SEED * 100 + 2,
        dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
             num_hidden_layers=2, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024),
        dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=2,
             patch_size=14, image_size=224, hidden_act="gelu", projection_dim=1024),
        1024, [pixel_spec("pixel_values", (2, 3, 224, 224)), pixel_spec("pixel_values_336", (1, 3, 336, 336))],
        ["# h14-hf", "",
         "transformers `CLIPModel` with the shapes of laion/CLIP-ViT-H-14-laion2B-s32B-b79K cut to 2 layers per "
         "tower (text 1024/4096/16 heads, vision 1280/5120/16 heads, patch 14, 224 px, gelu, projection 1024). "
         "`image_embeds_336_interpolated` = get_image_features(pixel_values_336, interpolate_pos_encoding=True)."])

    h14 = open_clip.get_model_config("ViT-H-14")
    h14["vision_cfg"]["layers"] = 2
    h14["text_cfg"]["layers"] = 2
    refs["h14-open_clip"] = open_clip_fixture(
        out, "h14-open_clip", SEED * 100 + 3, h14, [pixel_spec("pixel_values", (2, 3, 224, 224))],
        ["# h14-open_clip", "",
         "open_clip `CLIP` from open_clip's `ViT-H-14` model config with 2 layers per tower (nn.GELU), "
         "open_clip state-dict names, config as open_clip's hub export writes it."])

    variants = {
        "embed_dim": 64,
        "quick_gelu": False,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "head_width": 32, "layers": 2,
                       "mlp_ratio": 4, "ls_init_value": 0.1, "no_ln_pre": True, "norm_kwargs": {"eps": 1e-6}},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2,
                     "ls_init_value": 0.1, "pool_type": "last", "proj_type": "none",
                     "norm_kwargs": {"eps": 1e-6}},
    }
    refs["variants-open_clip"] = open_clip_fixture(
        out, "variants-open_clip", SEED * 100 + 4, variants, [pixel_spec("pixel_values", (2, 3, 32, 32))],
        ["# variants-open_clip", "",
         "Tiny open_clip `CLIP` (custom model_cfg) exercising LayerScale (`ls_1.gamma`/`ls_2.gamma`), "
         "no `visual.ln_pre`, text pool_type 'last' (position 15, i.e. padding for the short prompts, as "
         "open_clip computes it), no text projection, LayerNorm eps 1e-6, nn.GELU."])

    write_json(os.path.join(out, "VERSIONS.json"),
               {**found, "numpy": np.__version__, "python": sys.version.split()[0], "seed": SEED,
                "generator": GENERATOR, "script": SCRIPT})
    for name, ref in refs.items():
        for k, v in ref.items():
            if v.is_floating_point():
                print(f"  {name}: {k} {list(v.shape)} max|x| {v.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
