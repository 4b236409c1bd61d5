#!/usr/bin/env python3
"""Reference fixtures for the image pipeline tests (tests/test_image.c, test_preprocess.c,
test_augment.c), written to tests/fixtures/image/.

Needs Pillow, numpy, torch and transformers (>= 5: the PIL-backed CLIPImageProcessorPil and
LlavaImageProcessorPil; on transformers 4.x the slow CLIPImageProcessor is the PIL one).
Run from the repository root:  python3 tests/ref/make_image_fixtures.py

What is stored, and why this way (the folder stays under ~2.5 MB; full fp32 outputs at 336 would
be 1.35 MB per case):
- decode: the CRC-32 of PIL's Image.open(f).convert("RGB") bytes for every shared image (an exact
  check in 4 bytes), plus, for JPEGs, PIL's pixels at a stride of 5 in both directions stored as
  PNG (jpeg_<name>_s5.png) so that, should the CRC differ (another libjpeg build, other decode
  settings), the test says by how many levels. For images with transparency also the CRC of transformers 5's convert_to_rgb
  (alpha composited on white).
- siglip: for every image, SiglipImageProcessor's float32 pixel_values (CRC-32) at 384 and 32 (bicubic) and 45
  (bilinear): the square resize without a crop and the 0.5 mean/std.
- preprocess: for every image, at sizes 336 and 32, without and with LLaVA pad-to-square (the
  padded case only for non-square images, where it differs):
  * the CRC-32 of the final float32 pixel_values: an exact, bitwise check of the whole pipeline;
  * the processor run with do_rescale = do_normalize = False, i.e. the uint8 image after
    pad/resize/crop, stored losslessly as PNG: in full for JPEG sources (from when our JPEG decoder
    was stb_image's and differed, so the test measured the error everywhere) and at a stride of 3
    for PNG sources (the CRC must match; the sample says by how much when it does not);
  * at size 32, the full float32 pixel_values (.npy, 12 KB each), compared value by value.
- small 16-bit / gray+alpha PNGs made here, with PIL's RGB conversion of each.
- small JPEGs made here from a 61x47 crop of coffee.png (gray, CMYK with Adobe's inverted
  convention, progressive 4:2:0, 4:2:2, restart markers), with the CRC of PIL's convert("RGB") of
  each: the decoder variants beyond the shared 4:4:4 / 4:2:0 baseline JPEGs.
- resize: CRCs of PIL's Image.resize with every filter, shrinking and enlarging coffee.png.
- augment: the SeVa/VCD diffusion schedule computed as VCD does in torch float32, bilinear
  antialiased resizes by torch.nn.functional.interpolate (aug_bilinear_*.npy), and HSV hue shifts
  by Python's colorsys.
"""
import json, os, struct, sys, zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IMAGES = os.environ.get("VLM_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")) + "/images"
OUT = os.path.join(ROOT, "tests", "fixtures", "image")


def crc(a):
    return zlib.crc32(np.ascontiguousarray(a).tobytes()) & 0xFFFFFFFF


def write_png(path, arr, color_type, depth):
    """A minimal PNG writer so we control bit depth and colour type exactly."""
    h, w = arr.shape[:2]
    raw = arr.astype(">u2" if depth == 16 else "u1").tobytes()
    row = len(raw) // h
    data = b"".join(b"\x00" + raw[i * row:(i + 1) * row] for i in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


def processors():
    try:
        from transformers import CLIPImageProcessorPil as Clip, LlavaImageProcessorPil as Llava
    except ImportError:  # transformers 4.x: the slow (PIL) processors carry the plain names
        from transformers import CLIPImageProcessor as Clip, LlavaImageProcessor as Llava
    return Clip, Llava


def siglip_processor():
    try:
        from transformers import SiglipImageProcessorPil as Siglip
    except ImportError:
        from transformers import SiglipImageProcessor as Siglip
    return Siglip


# SiglipImageProcessor cases per image: (square size, PIL resample filter). 384 with bicubic is SigLIP-so400m's
# (LLaVA-Interleave's tower); the others shrink further and take another filter from the config.
SIGLIP_CASES = [(384, 3), (32, 3), (45, 2)]


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    from transformers.image_transforms import convert_to_rgb
    import transformers
    Clip, Llava = processors()
    manifest = {"generator": "tests/ref/make_image_fixtures.py",
                "versions": {"Pillow": Image.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
                "images": [], "extra_png": [], "augment": {}}

    names = sorted(n for n in os.listdir(IMAGES) if n != "truncated.jpg")
    for name in names:
        path = os.path.join(IMAGES, name)
        pil = Image.open(path)
        rgb = pil.convert("RGB")
        a = np.array(rgb)
        entry = {"name": name, "mode": pil.mode, "width": pil.size[0], "height": pil.size[1],
                 "rgb_crc32": crc(a), "cases": []}
        if "A" in pil.getbands() or pil.info.get("transparency") is not None:
            entry["white_crc32"] = crc(convert_to_rgb(Image.open(path), return_numpy=True))
        is_jpeg = name.endswith(".jpg")
        if is_jpeg:
            fn = "jpeg_%s_s5.png" % name[:-4]
            Image.fromarray(np.ascontiguousarray(a[::5, ::5])).save(os.path.join(OUT, fn), optimize=True)
            entry["jpeg_stride5_png"] = fn
        for size in (336, 32):
            for pad in (False, True):
                if pad and pil.size[0] == pil.size[1]:
                    continue  # pad-to-square is the identity
                kw = dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
                proc = Llava(do_pad=True, **kw) if pad else Clip(**kw)
                pv = proc(images=rgb, return_tensors="np")["pixel_values"][0].astype(np.float32)
                geo = proc(images=rgb, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
                assert np.all(geo == np.round(geo)) and geo.min() >= 0 and geo.max() <= 255
                geo = geo.astype(np.uint8)  # [3, S, S]
                case = {"size": size, "pad": pad, "pixel_values_crc32": crc(pv), "geometry_crc32": crc(geo)}
                stem = "p%d%s_%s" % (size, "pad" if pad else "", name.rsplit(".", 1)[0])
                if size == 336:
                    stride = 1 if is_jpeg else 3
                    hwc = np.ascontiguousarray(np.moveaxis(geo, 0, -1)[::stride, ::stride])
                    Image.fromarray(hwc).save(os.path.join(OUT, stem + ".png"), optimize=True)
                    case["geometry_png"] = stem + ".png"
                    case["geometry_stride"] = stride
                if size == 32:
                    np.save(os.path.join(OUT, stem + ".npy"), pv)
                    case["pixel_values_npy"] = stem + ".npy"
                entry["cases"].append(case)
        # SiglipImageProcessor: resize to the square (no crop), mean = std = 0.5; the CRC of the float32 values
        entry["siglip"] = []
        for size, resample in SIGLIP_CASES:
            proc = siglip_processor()(size={"height": size, "width": size}, resample=resample)
            pv = proc(images=rgb, return_tensors="np")["pixel_values"][0].astype(np.float32)
            assert pv.shape == (3, size, size)
            entry["siglip"].append({"size": size, "resample": resample, "pixel_values_crc32": crc(pv)})
        manifest["images"].append(entry)
        print(name, pil.mode, pil.size)

    # 16-bit and gray+alpha PNGs: PIL takes the high byte, except 16-bit gray (mode I;16) which it clips.
    rng = np.random.default_rng(7)
    extras = [("gray16.png", 0, 16, (7, 9)), ("gray16_low.png", 0, 16, (5, 6)), ("rgb16.png", 2, 16, (7, 9, 3)),
              ("rgba16.png", 6, 16, (6, 5, 4)), ("la16.png", 4, 16, (4, 7, 2)), ("la8.png", 4, 8, (5, 4, 2)),
              ("gray8.png", 0, 8, (3, 8))]
    for fn, ct, depth, shape in extras:
        hi = 300 if fn == "gray16_low.png" else (65536 if depth == 16 else 256)
        write_png(os.path.join(OUT, fn), rng.integers(0, hi, shape), ct, depth)
        im = Image.open(os.path.join(OUT, fn))
        rgb = np.array(im.convert("RGB"))
        manifest["extra_png"].append({"name": fn, "mode": im.mode, "rgb": rgb.reshape(-1).tolist(),
                                      "width": im.size[0], "height": im.size[1]})

    manifest["extra_jpeg"] = jpeg_variant_fixtures()

    # Every PIL filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming), shrinking and
    # enlarging, by CRC of Image.resize's output on coffee.png. Some sizes shrink the height by more
    # than twice the width's pixels, where Pillow >= 13 runs the vertical pass first.
    coffee = Image.open(os.path.join(IMAGES, "coffee.png")).convert("RGB")
    manifest["resize"] = {"image": "coffee.png", "cases": []}
    for f in range(6):
        for (w, h) in [(123, 77), (37, 900), (1000, 50), (601, 399), (600, 17), (590, 150), (300, 390), (336, 224)]:
            r = np.array(coffee.resize((w, h), resample=f))
            manifest["resize"]["cases"].append({"filter": f, "width": w, "height": h, "crc32": crc(r)})

    manifest["augment"] = augment_fixtures()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %s: %d files, %.2f MB" % (OUT, len(os.listdir(OUT)), total / 1e6))


def jpeg_variant_fixtures():
    """JPEG layouts the shared images lack, each with PIL's RGB pixels (CRC): odd sizes so the
    chroma upsampling meets partial blocks at the right and bottom edges."""
    src = Image.open(os.path.join(IMAGES, "coffee.png")).convert("RGB").crop((100, 50, 161, 97))
    variants = [("jpeg_gray.jpg", src.convert("L"), {}),
                ("jpeg_cmyk.jpg", src.convert("CMYK"), {}),  # PIL writes inverted CMYK + Adobe APP14
                ("jpeg_progressive420.jpg", src, {"progressive": True, "subsampling": 2}),
                ("jpeg_422.jpg", src, {"subsampling": 1}),
                ("jpeg_restart444.jpg", src, {"subsampling": 0, "restart_marker_rows": 1})]
    out = []
    for fn, im, kw in variants:
        path = os.path.join(OUT, fn)
        im.save(path, "JPEG", quality=85, **kw)
        back = Image.open(path)
        a = np.array(back.convert("RGB"))
        out.append({"name": fn, "mode": back.mode, "width": back.size[0], "height": back.size[1], "rgb_crc32": crc(a)})
    return out


def augment_fixtures():
    import colorsys
    import torch
    out = {}
    # VCD's add_diffusion_noise (DAMO-NLP-SG/VCD, reused by SeVa), in torch float32.
    betas = torch.sigmoid(torch.linspace(-6, 6, 1000)) * (0.5e-2 - 1e-5) + 1e-5
    abar = torch.cumprod(1 - betas, dim=0)
    ts = [0, 1, 100, 500, 800, 999]
    out["diffusion"] = {"t": ts, "sqrt_alpha_bar": [float(torch.sqrt(abar[t])) for t in ts],
                        "sqrt_one_minus_alpha_bar": [float(torch.sqrt(1 - abar[t])) for t in ts],
                        "alpha_bar": [float(abar[t]) for t in ts]}
    # Bilinear, align_corners=False, antialias=True (torchvision's resize on tensors), up and down.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 13, 17, generator=g)
    cases = []
    for (h, w) in [(40, 29), (5, 6), (13, 40), (7, 17)]:
        y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        fn = "aug_bilinear_%dx%d.npy" % (h, w)
        np.save(os.path.join(OUT, fn), y[0].numpy())
        cases.append({"h": h, "w": w, "npy": fn})
    np.save(os.path.join(OUT, "aug_bilinear_in.npy"), x[0].numpy())
    out["bilinear"] = {"in_npy": "aug_bilinear_in.npy", "cases": cases}
    # Hue shifts through HSV (what torchvision's adjust_hue does on float tensors).
    rs = np.random.default_rng(11)
    px = rs.random((20, 3)).tolist() + [[0.5, 0.5, 0.5], [1, 0, 0], [0, 0, 0], [1, 1, 1], [0.2, 0.9, 0.9]]
    hues = []
    for shift in (-0.5, -0.13, 0.0, 0.27, 0.5):
        res = []
        for r, gg, b in px:
            hh, s, v = colorsys.rgb_to_hsv(r, gg, b)
            res.append(list(colorsys.hsv_to_rgb((hh + shift) % 1.0, s, v)))
        hues.append({"shift": shift, "out": res})
    out["hue"] = {"in": px, "cases": hues}
    return out


if __name__ == "__main__":
    sys.exit(main())
