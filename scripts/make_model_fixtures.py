#!/usr/bin/env python3
"""Random-weight CLIP checkpoints and the outputs transformers computes for them.

Seeded and re-runnable. Writes, under tests/fixtures/models/ (committed, small):
  <name>/config.json, <name>/model.safetensors   (as save_pretrained writes them)
  <name>/reference.safetensors                   (inputs and transformers' outputs)
and with --b32 DIR the same for a model with exactly the shapes of
openai/clip-vit-base-patch32 (F32 and F16; ~600 MB, not committed):
  DIR/clip-vit-base-patch32-random{,-f16}/...

Every expected value in the Rust tests comes from here: transformers'
modeling_clip (eager attention, so attentions are returned), CPU, float32.

Usage: python3 scripts/make_model_fixtures.py [--out tests/fixtures/models] [--b32 DIR]
Pinned: see VERSIONS below; the script refuses other versions unless --any-version.
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPForImageClassification,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
)

VERSIONS = {"transformers": "5.24.0", "torch": "2.15.0"}
SEED = 20261129


def randomize(model, gen):
    """Weights of realistic magnitude (the default init is tiny), so a wrong
    kernel shows up as a large error rather than hiding under 1e-4."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.fill_(math.log(1 / 0.07))
            elif "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embedding" in name and p.dim() <= 2 and "patch" not in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def tiny_text(**kw):
    base = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=16, projection_dim=24,
                hidden_act="quick_gelu", bos_token_id=998, eos_token_id=2, pad_token_id=999)
    base.update(kw)
    return base


def tiny_vision(**kw):
    base = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                image_size=32, patch_size=8, projection_dim=24, hidden_act="quick_gelu")
    base.update(kw)
    return base


def text_inputs(gen, vocab, bos, eos, lengths, seq):
    """Right-padded with eos (as CLIPTokenizer pads), with attention masks."""
    ids = torch.full((len(lengths), seq), eos, dtype=torch.long)
    mask = torch.zeros((len(lengths), seq), dtype=torch.long)
    for i, n in enumerate(lengths):
        body = torch.randint(1, vocab - 3, (n - 2,), generator=gen)
        ids[i, 0] = bos
        ids[i, 1:n - 1] = body
        ids[i, n - 1] = eos
        mask[i, :n] = 1
    return ids, mask


def features(x):
    # transformers 5 wraps get_*_features in BaseModelOutputWithPooling; 4 returned the tensor.
    return x if torch.is_tensor(x) else x.pooler_output


def put_outputs(ref, prefix, out):
    for key in ("last_hidden_state", "pooler_output", "text_embeds", "image_embeds", "logits"):
        v = getattr(out, key, None)
        if v is not None:
            ref[f"{prefix}.{key}"] = v
    if getattr(out, "hidden_states", None) is not None:
        for i, h in enumerate(out.hidden_states):
            ref[f"{prefix}.hidden_states.{i}"] = h
    if getattr(out, "attentions", None) is not None:
        for i, a in enumerate(out.attentions):
            ref[f"{prefix}.attentions.{i}"] = a


def to_openai(sd, n_text, n_vision):
    """HF CLIPModel state dict -> OpenAI / open_clip names (the inverse of
    transformers' convert_clip_original_pytorch_to_hf.py)."""
    out = {
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": sd["text_model.final_layer_norm.weight"],
        "ln_final.bias": sd["text_model.final_layer_norm.bias"],
        "text_projection": sd["text_projection.weight"].T,
        "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
        "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd["vision_model.pre_layrnorm.weight"],
        "visual.ln_pre.bias": sd["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": sd["vision_model.post_layernorm.weight"],
        "visual.ln_post.bias": sd["vision_model.post_layernorm.bias"],
        "visual.proj": sd["visual_projection.weight"].T,
        "logit_scale": sd["logit_scale"],
    }
    for hf, oa, n in (("text_model.encoder.layers.", "transformer.resblocks.", n_text),
                      ("vision_model.encoder.layers.", "visual.transformer.resblocks.", n_vision)):
        for i in range(n):
            p, b = f"{hf}{i}.", f"{oa}{i}."
            for kind in ("weight", "bias"):
                out[f"{b}attn.in_proj_{kind}"] = torch.cat(
                    [sd[f"{p}self_attn.{x}_proj.{kind}"] for x in "qkv"], 0)
                out[f"{b}attn.out_proj.{kind}"] = sd[f"{p}self_attn.out_proj.{kind}"]
                out[f"{b}ln_1.{kind}"] = sd[f"{p}layer_norm1.{kind}"]
                out[f"{b}ln_2.{kind}"] = sd[f"{p}layer_norm2.{kind}"]
                out[f"{b}mlp.c_fc.{kind}"] = sd[f"{p}mlp.fc1.{kind}"]
                out[f"{b}mlp.c_proj.{kind}"] = sd[f"{p}mlp.fc2.{kind}"]
    return {k: v.contiguous() for k, v in out.items()}


def save_ref(path, ref):
    tensors = {}
    for k, v in ref.items():
        v = v.detach().clone().contiguous()
        tensors[k] = v.to(torch.int64) if not v.is_floating_point() else v.to(torch.float32)
    # One metadata key: safetensors writes several in hash order, so the bytes would differ by run.
    versions = {"transformers": transformers.__version__, "torch": torch.__version__}
    save_file(tensors, path, metadata={"versions": json.dumps(versions, sort_keys=True)})


def clip_model_fixture(out_dir, name, text_kw, vision_kw, gen, dtypes=("float32",), openai=False,
                       lengths=(5, 9, 12), seq=12, batch_images=2):
    cfg = CLIPConfig(text_config=text_kw, vision_config=vision_kw,
                     projection_dim=text_kw["projection_dim"], attn_implementation="eager")
    model = CLIPModel(cfg).eval()
    randomize(model, gen)
    tc, vc = cfg.text_config, cfg.vision_config
    ids, mask = text_inputs(gen, tc.vocab_size, tc.bos_token_id or 998, 999 if tc.vocab_size == 1000 else 49407,
                            list(lengths), seq)
    if tc.vocab_size != 1000:
        ids[:, 0] = 49406
    px = torch.randn((batch_images, 3, vc.image_size, vc.image_size), generator=gen)
    px_big = torch.randn((1, 3, vc.image_size + 2 * vc.patch_size, vc.image_size + vc.patch_size + 3),
                         generator=gen)
    for dtype in dtypes:
        d = os.path.join(out_dir, name if dtype == "float32" else f"{name}-{ {'float16': 'f16', 'bfloat16': 'bf16'}[dtype]}")
        shutil.rmtree(d, ignore_errors=True)
        m = CLIPModel(cfg).eval()
        m.load_state_dict(model.state_dict())
        m = m.to(getattr(torch, dtype))
        m.save_pretrained(d)
        # The reference computes in f32 on the (possibly 16-bit-rounded) stored weights.
        m = m.float()
        ref = {"input_ids": ids, "attention_mask": mask, "pixel_values": px, "pixel_values_big": px_big}
        with torch.no_grad():
            out = m(input_ids=ids, attention_mask=mask, pixel_values=px,
                    output_hidden_states=True, output_attentions=True)
            ref["logits_per_image"] = out.logits_per_image
            ref["logits_per_text"] = out.logits_per_text
            ref["text_embeds"] = out.text_embeds
            ref["image_embeds"] = out.image_embeds
            put_outputs(ref, "text", out.text_model_output)
            put_outputs(ref, "vision", out.vision_model_output)
            # transformers 5 overwrites the towers' pooler_output inside CLIPOutput with the
            # projected features (v4 kept the tower's); the towers' own pooler_output:
            ref["text.pooler_output"] = m.text_model(input_ids=ids, attention_mask=mask).pooler_output
            ref["vision.pooler_output"] = m.vision_model(pixel_values=px).pooler_output
            ref["text_features"] = features(m.get_text_features(input_ids=ids, attention_mask=mask))
            ref["text_features_nomask"] = features(m.get_text_features(input_ids=ids))
            ref["image_features"] = features(m.get_image_features(pixel_values=px))
            nomask = m.text_model(input_ids=ids)
            ref["text_nomask.last_hidden_state"] = nomask.last_hidden_state
            big = m.vision_model(pixel_values=px_big, interpolate_pos_encoding=True)
            put_outputs(ref, "vision_interp", big)
        save_ref(os.path.join(d, "reference.safetensors"), ref)
        if openai and dtype == "float32":
            od = os.path.join(out_dir, f"{name}-openai")
            shutil.rmtree(od, ignore_errors=True)
            os.makedirs(od)
            shutil.copy(os.path.join(d, "config.json"), od)
            save_file(to_openai(m.state_dict(), tc.num_hidden_layers, vc.num_hidden_layers),
                      os.path.join(od, "model.safetensors"))
        print("wrote", d)


def tower_fixture(out_dir, name, cls, cfg, gen, kind):
    model = cls(cfg).eval()
    randomize(model, gen)
    d = os.path.join(out_dir, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    ref = {}
    with torch.no_grad():
        if kind == "text":
            ids, mask = text_inputs(gen, cfg.vocab_size, 998, 999, [4, 10], 10)
            ref.update(input_ids=ids, attention_mask=mask)
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        else:
            size = (cfg.vision_config if hasattr(cfg, "vision_config") else cfg).image_size
            px = torch.randn((2, 3, size, size), generator=gen)
            ref["pixel_values"] = px
            out = model(pixel_values=px, output_hidden_states=True, output_attentions=True)
        put_outputs(ref, "out", out)
    save_ref(os.path.join(d, "reference.safetensors"), ref)
    print("wrote", d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models"))
    ap.add_argument("--b32", metavar="DIR", help="also write B/32-shaped models (large) into DIR")
    ap.add_argument("--any-version", action="store_true")
    args = ap.parse_args()
    found = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}
    if found != VERSIONS and not args.any_version:
        sys.exit(f"pinned {VERSIONS}, found {found} (use --any-version to override)")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    clip_model_fixture(out, "tiny-quickgelu", tiny_text(), tiny_vision(), gen,
                       dtypes=("float32", "float16", "bfloat16"), openai=True)
    clip_model_fixture(out, "tiny-gelu", tiny_text(hidden_act="gelu", eos_token_id=999, layer_norm_eps=1e-6),
                       tiny_vision(hidden_act="gelu", layer_norm_eps=1e-6), gen)
    clip_model_fixture(out, "tiny-gelu-new", tiny_text(hidden_act="gelu_new"),
                       tiny_vision(hidden_act="gelu_pytorch_tanh"), gen)
    tcfg = CLIPTextConfig(**tiny_text(eos_token_id=999), attn_implementation="eager")
    vcfg = CLIPVisionConfig(**tiny_vision(), attn_implementation="eager")
    tower_fixture(out, "tiny-text", CLIPTextModel, tcfg, gen, "text")
    tower_fixture(out, "tiny-text-projection", CLIPTextModelWithProjection, tcfg, gen, "text")
    tower_fixture(out, "tiny-vision", CLIPVisionModel, vcfg, gen, "vision")
    tower_fixture(out, "tiny-vision-projection", CLIPVisionModelWithProjection, vcfg, gen, "vision")
    ccfg = CLIPConfig(text_config=tiny_text(), vision_config=tiny_vision(), attn_implementation="eager",
                      id2label={i: n for i, n in enumerate(["cat", "dog", "car", "tree", "boat"])})
    tower_fixture(out, "tiny-classifier", CLIPForImageClassification, ccfg, gen, "vision")
    with open(os.path.join(out, "VERSIONS.json"), "w") as f:
        json.dump({**found, "numpy": np.__version__, "python": sys.version.split()[0], "seed": SEED,
                   "script": "scripts/make_model_fixtures.py"}, f, indent=1)
        f.write("\n")

    if args.b32:
        b32_text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                        num_attention_heads=8, max_position_embeddings=77, projection_dim=512,
                        hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)
        b32_vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          image_size=224, patch_size=32, projection_dim=512, hidden_act="quick_gelu")
        clip_model_fixture(os.path.abspath(args.b32), "clip-vit-base-patch32-random", b32_text, b32_vision, gen,
                           dtypes=("float32", "float16"), openai=True, lengths=(7, 20, 77), seq=77)


if __name__ == "__main__":
    main()
