#!/usr/bin/env python3
"""Generates the image-preprocessing fixtures in tests/fixtures/images/.

Reference (pinned, see /work/shared/README.md): transformers 5
`CLIPImageProcessorPil` (the Pillow backend) on `PIL.Image.open(path)`,
Pillow 13.0.0. Re-runnable and seeded: the images and the expected
`pixel_values` come out identical on every run with the same versions.

Outputs:
  tests/fixtures/images/*.{png,jpg,webp,gif,bmp,tiff}  the inputs
  tests/fixtures/images/configs/*.json                 preprocessor configs
  tests/fixtures/images/expected/*.pvq                 reference pixel_values
  tests/fixtures/images/manifest.json                  what is what, versions

`.pvq` is a lossless compact encoding of a float32 array whose channels each
hold at most 256 distinct values (true of pixel_values, which are a function
of one uint8 per element): gzip of
  b"PVQ1", u32 ndim, u32 dims[ndim], then per channel (axis -3):
  u16 count, count x f32 palette (ascending), H*W u8 index deltas
all little-endian. Indices are delta-coded along each row (d[0] = i[0],
d[x] = i[x] - i[x-1] mod 256) so that smooth images compress well. The script decodes every file again and asserts it equals
the reference array bit for bit.

Usage: python3 scripts/make_image_fixtures.py
"""

import gzip
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
import transformers
from PIL import Image
from transformers import CLIPImageProcessorPil

PINNED = {"transformers": "5.24.0", "Pillow": "13.0.0"}
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "images")
rng = np.random.default_rng(20240604)


# ---------------------------------------------------------------- writers
def png_raw(w, h, color_type, bit_depth, rows, extra_chunks=()):
    """A PNG written by hand, for layouts Pillow cannot save (16-bit RGB, ...)."""

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    data = b"".join(b"\x00" + r for r in rows)
    extra = b"".join(chunk(t, d) for t, d in extra_chunks)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + extra
        + chunk(b"IDAT", zlib.compress(data, 9))
        + chunk(b"IEND", b"")
    )


def smooth_noise(h, w, c, scale=8):
    """Smooth random texture + fine noise, uint8: exercises every filter tap."""
    small = rng.integers(0, 256, size=(max(2, h // scale), max(2, w // scale), c)).astype(np.uint8)
    mode = "RGB" if c == 3 else "L"
    im = Image.fromarray(small[..., 0] if c == 1 else small, mode)
    big = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR)).astype(np.int16)
    if c == 1:
        big = big[..., None]
    big = big + rng.integers(-4, 5, size=big.shape)
    return np.clip(big, 0, 255).astype(np.uint8)


def skimage_photo(name):
    import skimage.data

    return Image.open(os.path.join(os.path.dirname(skimage.data.__file__), name)).convert("RGB")


# ---------------------------------------------------------------- images
def make_images():
    """Returns [(file, kind, note)], writing every file into OUT."""
    made = []

    def save(im, name, kind, note, **kw):
        im.save(os.path.join(OUT, name), **kw)
        made.append((name, kind, note))

    def save_bytes(data, name, kind, note):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        made.append((name, kind, note))

    # Real photographs (scikit-image data), sizes that downscale with antialiasing.
    astro = skimage_photo("astronaut.png")  # 512x512
    save(astro.resize((384, 384), Image.Resampling.LANCZOS), "astronaut_384.png", "photo", "384x384 downscale")
    coffee = skimage_photo("coffee.png")  # 600x400
    save(coffee.resize((480, 320), Image.Resampling.LANCZOS).quantize(256, dither=Image.Dither.NONE).convert("RGB"),
         "coffee_480x320.png", "photo", "480x320 landscape (256 colours, stored RGB)")
    chelsea = skimage_photo("chelsea.png")  # 451x300
    save(chelsea.crop((0, 0, 300, 300)).resize((300, 451), Image.Resampling.BICUBIC), "chelsea_300x451.png",
         "photo", "300x451 portrait")
    rocket = Image.open(os.path.join(os.path.dirname(__import__("skimage.data").data.__file__), "rocket.jpg"))
    save(rocket.convert("RGB").resize((320, 214), Image.Resampling.LANCZOS), "rocket_320x214.png", "photo",
         "320x214 landscape")
    # Tall image that triggers Pillow 13's vertical-first pass order
    # (dy = 700-522 = 178 > 2*dx = 152).
    tall = astro.crop((100, 0, 400, 512)).resize((300, 700), Image.Resampling.BILINEAR)
    save(tall.quantize(256, dither=Image.Dither.NONE).convert("RGB"), "tall_300x700.png", "size",
         "vertical-first pass (Pillow 13 rule)")

    # Synthetic sizes (RGB noise).
    for (w, h, note) in [
        (1, 1, "1x1 upscale"),
        (1000, 20, "very wide"),
        (30, 900, "very tall, upscale width"),
        (100, 80, "smaller than the crop, upscale"),
        (37, 53, "odd, upscale"),
    ]:
        save(Image.fromarray(smooth_noise(h, w, 3, 4)), f"noise_{w}x{h}.png", "size", note)
    # Larger odd sizes: crops of a photograph (compress better than noise).
    for (w, h, x0, y0, note) in [
        (224, 224, 150, 60, "already 224, no resample"),
        (225, 224, 140, 80, "one pixel too wide, downscale to 224x224"),
        (231, 224, 100, 200, "crop offset diff = 7"),
        (453, 227, 30, 150, "odd downscale"),
    ]:
        save(astro.crop((x0, y0, x0 + w, y0 + h)), f"crop_{w}x{h}.png", "size", note)

    # Modes.
    w, h = 67, 45
    rgb = smooth_noise(h, w, 3, 6)
    alpha = smooth_noise(h, w, 1, 6)[..., 0].copy()
    alpha[:, :8] = 0
    alpha[:, 8:16] = 255
    save(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "mode_rgba.png", "mode", "RGBA, alpha 0..255")
    gray = smooth_noise(h, w, 1, 6)[..., 0]
    save(Image.fromarray(gray, "L"), "mode_gray.png", "mode", "L")
    save(Image.fromarray(np.dstack([gray, alpha]), "LA"), "mode_gray_alpha.png", "mode", "LA")
    save(Image.fromarray(gray > 128).convert("1"), "mode_1bit.png", "mode", "1-bit")
    pal = Image.fromarray(rgb).quantize(64, dither=Image.Dither.NONE)
    save(pal, "mode_palette.png", "mode", "P, no transparency")
    trns = bytes([0, 64, 128, 200] + [255] * 60)
    save(pal, "mode_palette_trns.png", "mode", "P + tRNS (alpha per index)", transparency=trns)
    save(Image.fromarray(gray, "L"), "mode_gray_trns.png", "mode", "L + tRNS", transparency=int(gray[0, 0]))
    save(Image.fromarray(rgb), "mode_rgb_trns.png", "mode", "RGB + tRNS",
         transparency=tuple(int(v) for v in rgb[0, 0]))
    g16 = (smooth_noise(h, w, 1, 6)[..., 0].astype(np.uint16) * 3)  # 0..765: part clamps
    save(Image.fromarray(g16), "mode_gray16.png", "mode", "I;16, values 0..765 (Pillow clamps)")
    hi = lambda a: (a.astype(np.uint32) * 257 + rng.integers(0, 256, size=a.shape)).clip(0, 65535)
    rows16 = lambda arr: [arr[y].astype(">u2").tobytes() for y in range(arr.shape[0])]
    save_bytes(png_raw(w, h, 2, 16, rows16(hi(rgb))), "mode_rgb16.png", "mode", "RGB 16-bit")
    save_bytes(png_raw(w, h, 6, 16, rows16(hi(np.dstack([rgb, alpha])))), "mode_rgba16.png", "mode",
               "RGBA 16-bit")
    save_bytes(png_raw(w, h, 4, 16, rows16(hi(np.dstack([gray, alpha])))), "mode_gray_alpha16.png", "mode",
               "LA 16-bit")
    save_bytes(png_raw(w, h, 0, 16, rows16(g16), [(b"tRNS", struct.pack(">H", int(g16[0, 0])))]),
               "mode_gray16_trns.png", "mode", "I;16 + tRNS (Pillow ignores it)")
    g2 = (gray >> 6).astype(np.uint8)
    rows2 = [np.packbits(np.unpackbits(r[:, None], axis=1)[:, 6:].reshape(-1)).tobytes() for r in g2]
    save_bytes(png_raw(w, h, 0, 2, rows2), "mode_gray2bit.png", "mode", "2-bit gray")

    # Other containers (lossless).
    chel = chelsea.resize((180, 120), Image.Resampling.LANCZOS)
    save(chel, "format_webp_lossless.webp", "format", "WebP lossless", lossless=True, quality=100)
    gif = chel.quantize(128, dither=Image.Dither.NONE)
    save(gif, "format_gif.gif", "format", "GIF (P, transparency index 0)", transparency=0)
    save(chel, "format_bmp.bmp", "format", "BMP 24-bit")
    save(chel, "format_tiff.tiff", "format", "TIFF RGB (uncompressed)")

    # JPEGs (decoders differ from libjpeg: measured, not exact).
    save(chelsea, "jpeg_chelsea_451x300.jpg", "jpeg", "baseline 4:2:0 q90", quality=90)
    save(astro, "jpeg_astronaut_512.jpg", "jpeg", "baseline 4:4:4 q85", quality=85, subsampling=0)
    save(chel.convert("L"), "jpeg_gray.jpg", "jpeg", "grayscale q90", quality=90)
    save(chel.convert("CMYK"), "jpeg_cmyk.jpg", "jpeg", "CMYK (Adobe)", quality=90)
    save(chel, "webp_lossy.webp", "webp_lossy", "WebP lossy q80 (libwebp vs image-webp)", quality=80)
    return made


CONFIGS = {
    "default": {},
    "hub_b32": {
        "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
    },
    "clip336": {"size": 336, "crop_size": 336},
    "hw_nocrop": {"size": {"height": 120, "width": 160}, "do_center_crop": False},
    "pad_crop": {"size": {"height": 100, "width": 150}, "crop_size": {"height": 128, "width": 160}},
    "no_resize_pad": {"do_resize": False, "crop_size": {"height": 96, "width": 70}},
    "bilinear": {"resample": 2, "size": 96, "crop_size": 96},
    "lanczos": {"resample": 1, "size": 96, "crop_size": 96},
    "box": {"resample": 4, "size": 96, "crop_size": 96},
    "hamming": {"resample": 5, "size": 96, "crop_size": 96},
    "no_rescale": {"do_rescale": False, "image_mean": 127.5, "image_std": 64.0},
    "raw_u8": {"do_rescale": False, "do_normalize": False, "size": {"shortest_edge": 64}},
}

# Which images each extra config runs on (the default runs on all).
CONFIG_IMAGES = {
    "hub_b32": ["mode_rgba.png"],
    "clip336": ["noise_37x53.png"],
    "hw_nocrop": ["coffee_480x320.png", "noise_37x53.png"],
    "pad_crop": ["coffee_480x320.png", "noise_37x53.png"],
    "no_resize_pad": ["noise_100x80.png", "noise_37x53.png"],
    "bilinear": ["astronaut_384.png", "noise_37x53.png"],
    "lanczos": ["astronaut_384.png", "noise_37x53.png"],
    "box": ["astronaut_384.png", "noise_37x53.png"],
    "hamming": ["astronaut_384.png", "noise_37x53.png"],
    "no_rescale": ["rocket_320x214.png"],
    "raw_u8": ["rocket_320x214.png", "tall_300x700.png"],
}


# ---------------------------------------------------------------- .pvq
def encode_pvq(a):
    a = np.ascontiguousarray(a, dtype="<f4")
    assert a.ndim >= 3
    planes = a.reshape(-1, a.shape[-2] * a.shape[-1])
    out = io.BytesIO()
    out.write(b"PVQ1" + struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape))
    for plane in planes:
        bits = plane.view("<u4")
        pal, idx = np.unique(bits, return_inverse=True)
        assert len(pal) <= 256, "more than 256 distinct values in a channel"
        order = np.argsort(pal.view("<f4"), kind="stable")  # ascending by value
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        idx = rank[idx].astype(np.uint8).reshape(a.shape[-2], a.shape[-1])
        delta = idx.copy()
        delta[:, 1:] = idx[:, 1:] - idx[:, :-1]  # uint8 wraps
        out.write(struct.pack("<H", len(pal)) + pal[order].astype("<u4").tobytes() + delta.tobytes())
    return gzip.compress(out.getvalue(), compresslevel=9, mtime=0)


def decode_pvq(data):
    b = gzip.decompress(data)
    assert b[:4] == b"PVQ1"
    nd = struct.unpack_from("<I", b, 4)[0]
    shape = struct.unpack_from(f"<{nd}I", b, 8)
    off = 8 + 4 * nd
    hw = shape[-1] * shape[-2]
    planes = []
    for _ in range(int(np.prod(shape[:-2]))):
        n = struct.unpack_from("<H", b, off)[0]
        pal = np.frombuffer(b, "<u4", n, off + 2)
        delta = np.frombuffer(b, np.uint8, hw, off + 2 + 4 * n).reshape(shape[-2], shape[-1])
        idx = np.cumsum(delta, axis=1, dtype=np.uint8)
        planes.append(pal[idx.reshape(-1)])
        off += 2 + 4 * n + hw
    assert off == len(b)
    return np.stack(planes).view("<f4").reshape(shape)


def reference(path, cfg):
    proc = CLIPImageProcessorPil.from_dict(dict(cfg))
    with Image.open(path) as im:
        mode = im.mode
        pv = proc(images=im, return_tensors="np")["pixel_values"]
    return np.asarray(pv), mode


def main():
    for k, v in PINNED.items():
        have = {"transformers": transformers.__version__, "Pillow": PIL.__version__}[k]
        if have != v:
            print(f"warning: {k} {have} is not the pinned {v}", file=sys.stderr)
    os.makedirs(os.path.join(OUT, "expected"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "configs"), exist_ok=True)
    made = make_images()
    for name, cfg in CONFIGS.items():
        with open(os.path.join(OUT, "configs", f"{name}.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    cases = []
    written = {}
    for file, kind, note in made:
        configs = ["default"] + [c for c, imgs in CONFIG_IMAGES.items() if file in imgs]
        for c in configs:
            pv, mode = reference(os.path.join(OUT, file), CONFIGS[c])
            pv = pv.astype(np.float32) if pv.dtype != np.float32 else pv
            exp = f"expected/{os.path.splitext(file)[0]}.{c}.pvq"
            data = encode_pvq(pv)
            assert np.array_equal(decode_pvq(data).view(np.uint32), pv.view(np.uint32))
            exp = written.setdefault(data, exp)  # identical results share one file
            with open(os.path.join(OUT, exp), "wb") as f:
                f.write(data)
            with Image.open(os.path.join(OUT, file)) as im:
                size = list(im.size)
            cases.append({
                "image": file, "kind": kind, "note": note, "pil_mode": mode, "size_wh": size,
                "config": f"configs/{c}.json", "expected": exp, "shape": list(pv.shape),
                "exact": kind not in ("jpeg", "webp_lossy"),
            })
    manifest = {
        "generator": "scripts/make_image_fixtures.py",
        "reference": "transformers CLIPImageProcessorPil.from_dict(config)(images=PIL.Image.open(path), "
                     "return_tensors='np').pixel_values",
        "versions": {
            "transformers": transformers.__version__, "Pillow": PIL.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0],
        },
        "cases": cases,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"{len(made)} images, {len(cases)} cases, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
