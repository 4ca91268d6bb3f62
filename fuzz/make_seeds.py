"""Writes the seed inputs of the `weights` and `configs` fuzz targets.

`seeds/weights/`: a micro CLIPModel (hidden width 4, one layer per tower) in
F32, F16 and BF16 and in OpenAI naming, plus a few broken headers.
`seeds/configs/`: config.json and preprocessor_config.json variants, each
prefixed with the target's mode byte (0 = config.json, 1 = preprocessor).

Run from `fuzz/`: `python3 make_seeds.py` (needs numpy and safetensors).
"""
import json
import os
import struct

import numpy as np
from safetensors.numpy import save

V, T, D, F, P, IMG, PROJ = 8, 4, 4, 8, 2, 4, 4
rng = np.random.default_rng(0)


def r(*shape):
    return (rng.standard_normal(shape) * 0.2).astype(np.float32)


def layer(prefix):
    t = {}
    for ln in ("layer_norm1", "layer_norm2"):
        t[f"{prefix}.{ln}.weight"] = np.ones(D, np.float32)
        t[f"{prefix}.{ln}.bias"] = np.zeros(D, np.float32)
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        t[f"{prefix}.self_attn.{p}.weight"] = r(D, D)
        t[f"{prefix}.self_attn.{p}.bias"] = r(D)
    t[f"{prefix}.mlp.fc1.weight"], t[f"{prefix}.mlp.fc1.bias"] = r(F, D), r(F)
    t[f"{prefix}.mlp.fc2.weight"], t[f"{prefix}.mlp.fc2.bias"] = r(D, F), r(D)
    return t


hf = {
    "text_model.embeddings.token_embedding.weight": r(V, D),
    "text_model.embeddings.position_embedding.weight": r(T, D),
    "text_model.final_layer_norm.weight": np.ones(D, np.float32),
    "text_model.final_layer_norm.bias": np.zeros(D, np.float32),
    "vision_model.embeddings.patch_embedding.weight": r(D, 3, P, P),
    "vision_model.embeddings.class_embedding": r(D),
    "vision_model.embeddings.position_embedding.weight": r((IMG // P) ** 2 + 1, D),
    "vision_model.pre_layrnorm.weight": np.ones(D, np.float32),
    "vision_model.pre_layrnorm.bias": np.zeros(D, np.float32),
    "vision_model.post_layernorm.weight": np.ones(D, np.float32),
    "vision_model.post_layernorm.bias": np.zeros(D, np.float32),
    "text_projection.weight": r(PROJ, D),
    "visual_projection.weight": r(PROJ, D),
    "logit_scale": np.array(2.6592, np.float32),
}
hf.update(layer("text_model.encoder.layers.0"))
hf.update(layer("vision_model.encoder.layers.0"))

w = "seeds/weights"
with open(f"{w}/micro_f32.safetensors", "wb") as f:
    f.write(save(hf))
with open(f"{w}/micro_f16.safetensors", "wb") as f:
    f.write(save({k: v.astype(np.float16) for k, v in hf.items()}))
# numpy has no bfloat16: the top halves of the f32 bit patterns.
header = {}
data = b""
for k, v in sorted(hf.items()):
    b = (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [len(data), len(data) + len(b)]}
    data += b
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(f"{w}/micro_bf16.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)


def openai(hf):
    o = {}
    for tower, root in (("text_model.", "transformer."), ("vision_model.", "visual.transformer.")):
        p = f"{tower}encoder.layers.0"
        b = f"{root}resblocks.0"
        for s in ("weight", "bias"):
            o[f"{b}.attn.in_proj_{s}"] = np.concatenate(
                [hf[f"{p}.self_attn.{x}_proj.{s}"] for x in "qkv"]
            )
            o[f"{b}.attn.out_proj.{s}"] = hf[f"{p}.self_attn.out_proj.{s}"]
            o[f"{b}.ln_1.{s}"] = hf[f"{p}.layer_norm1.{s}"]
            o[f"{b}.ln_2.{s}"] = hf[f"{p}.layer_norm2.{s}"]
            o[f"{b}.mlp.c_fc.{s}"] = hf[f"{p}.mlp.fc1.{s}"]
            o[f"{b}.mlp.c_proj.{s}"] = hf[f"{p}.mlp.fc2.{s}"]
    o["token_embedding.weight"] = hf["text_model.embeddings.token_embedding.weight"]
    o["positional_embedding"] = hf["text_model.embeddings.position_embedding.weight"]
    o["ln_final.weight"] = hf["text_model.final_layer_norm.weight"]
    o["ln_final.bias"] = hf["text_model.final_layer_norm.bias"]
    o["visual.conv1.weight"] = hf["vision_model.embeddings.patch_embedding.weight"]
    o["visual.class_embedding"] = hf["vision_model.embeddings.class_embedding"]
    o["visual.positional_embedding"] = hf["vision_model.embeddings.position_embedding.weight"]
    for s in ("weight", "bias"):
        o[f"visual.ln_pre.{s}"] = hf[f"vision_model.pre_layrnorm.{s}"]
        o[f"visual.ln_post.{s}"] = hf[f"vision_model.post_layernorm.{s}"]
    o["text_projection"] = np.ascontiguousarray(hf["text_projection.weight"].T)
    o["visual.proj"] = np.ascontiguousarray(hf["visual_projection.weight"].T)
    o["logit_scale"] = hf["logit_scale"]
    return o


with open(f"{w}/micro_openai.safetensors", "wb") as f:
    f.write(save(openai(hf)))


def raw(header, data=b""):
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + data


broken = {
    "empty_header": raw("{}"),
    "metadata_only": raw('{"__metadata__":{"format":"pt"}}'),
    "overlap": raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                   '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', bytes(12)),
    "past_end": raw('{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}', bytes(16)),
    "big_shape": raw('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', bytes(4)),
    "odd_dtypes": raw('{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},'
                      '"b":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[8,10]},'
                      '"c":{"dtype":"BOOL","shape":[],"data_offsets":[10,11]}}', bytes(11)),
    "misaligned_f32": raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                          '"b":{"dtype":"F32","shape":[2,2],"data_offsets":[1,17]}}', bytes(17)),
}
for name, b in broken.items():
    with open(f"{w}/{name}.safetensors", "wb") as f:
        f.write(b)

micro_config = {
    "model_type": "clip",
    "projection_dim": PROJ,
    "text_config": {"vocab_size": V, "hidden_size": D, "intermediate_size": F, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "max_position_embeddings": T, "eos_token_id": 2},
    "vision_config": {"hidden_size": D, "intermediate_size": F, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "image_size": IMG, "patch_size": P},
}
configs = {
    "micro": micro_config,
    "defaults": {"model_type": "clip"},
    "legacy_dict": {"text_config_dict": micro_config["text_config"], "vision_config_dict": micro_config["vision_config"],
                    "projection_dim": PROJ, "id2label": {"0": "cat", "1": "dog"}},
    "text_only": {"model_type": "clip_text_model", **micro_config["text_config"]},
    "vision_only": {"model_type": "clip_vision_model", **micro_config["vision_config"]},
    "absurd": {"model_type": "clip", "projection_dim": 4,
               "text_config": {"hidden_size": 1000000000000, "num_attention_heads": 1, "vocab_size": 8},
               "vision_config": {"image_size": 4294967296, "patch_size": 1, "hidden_size": 4,
                                 "num_attention_heads": 2}},
}
c = "seeds/configs"
for name, cfg in configs.items():
    with open(f"{c}/config_{name}.bin", "wb") as f:
        f.write(b"\x00" + json.dumps(cfg).encode())
pre = {
    "openai": {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
               "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
               "resample": 3, "size": 224},
    "dict_sizes": {"size": {"shortest_edge": 8}, "crop_size": {"height": 8, "width": 6}},
    "exact": {"size": {"height": 5, "width": 9}, "do_center_crop": False, "image_mean": 0.5, "image_std": 0.5},
    "no_resize": {"do_resize": False, "do_center_crop": False, "do_rescale": False, "do_normalize": False},
}
for name, cfg in pre.items():
    with open(f"{c}/preprocessor_{name}.bin", "wb") as f:
        f.write(b"\x01" + json.dumps(cfg).encode())
