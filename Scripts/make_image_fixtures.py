#!/usr/bin/env python3
"""Makes the image-decoding and resize fixtures under Tests/Fixtures/formats/.

Expects the reference venv (not in git), e.g. /work/main/.venv-ref/bin/python, with:
  pillow 13.0.0, opencv-python-headless 5.0.0, numpy 2.4, torchvision 0.29, mobilesam-mirror 1.0.0
Run from the repository root:  .venv-ref/bin/python Scripts/make_image_fixtures.py

Inputs are made with Pillow from the committed sample photos (Tests/Fixtures/images). Expected
pixels come from Pillow's `convert("RGB")` (with `ImageOps.exif_transpose` for orientation), or
from OpenCV's `imread` for 16-bit PNG (OpenCV keeps the high byte; Pillow would clamp). Large
expected images are stored as the FNV-1a-64 hash of their RGB bytes, small ones in full (base64).
Regenerate only on purpose: the tests compare against these files byte for byte.
"""

import base64
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import PIL
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "Fixtures"
OUT = FIXTURES / "formats"
PHOTOS = ["picture1.jpg", "picture2.jpg", "picture3.jpg", "picture5.jpg"]


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def rgb_bytes(image: Image.Image) -> bytes:
    assert image.mode == "RGB"
    return image.tobytes()


def pillow_rgb(path: Path, transpose: bool = False) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        if transpose:
            im = ImageOps.exif_transpose(im)
        return im.convert("RGB")


def opencv_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(bgr[:, :, ::-1])


def entry(name: str, width: int, height: int, data: bytes, reference: str, inline: bool = False):
    assert len(data) == width * height * 3
    item = {"file": name, "width": width, "height": height, "fnv1a64": fnv1a64(data),
            "reference": reference}
    if inline:
        item["rgb_base64"] = base64.b64encode(data).decode()
    return item


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def write_interlaced_png(path: Path, rgb: np.ndarray) -> None:
    """Adam7-interlaced 8-bit RGB PNG (Pillow cannot write interlaced PNGs)."""
    height, width, _ = rgb.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()  # filter type 0 (none)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + png_chunk(b"IEND", b""))
    path.write_bytes(data)


def insert_after_soi(jpeg: bytes, segment: bytes) -> bytes:
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


def app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def save_jpeg(image: Image.Image, path: Path, **options) -> None:
    image.save(path, "JPEG", quality=90, **options)


def make_format_fixtures(base: Image.Image) -> list:
    entries = []

    def expect_pillow(name: str, transpose: bool = False, inline: bool = False):
        image = pillow_rgb(OUT / name, transpose)
        entries.append(entry(f"formats/{name}", image.width, image.height, rgb_bytes(image),
                             "Pillow convert('RGB')" + (" after exif_transpose" if transpose else ""),
                             inline))
        return image

    # JPEG variants.
    save_jpeg(base, OUT / "baseline.jpg")
    baseline = expect_pillow("baseline.jpg")
    save_jpeg(base, OUT / "progressive.jpg", progressive=True)
    expect_pillow("progressive.jpg")
    save_jpeg(base.convert("L"), OUT / "gray.jpg")
    expect_pillow("gray.jpg")
    save_jpeg(base.convert("CMYK"), OUT / "cmyk.jpg")
    with Image.open(OUT / "cmyk.jpg") as im:
        assert im.mode == "CMYK", im.mode
    expect_pillow("cmyk.jpg")
    # The same scan data read as YCCK (Adobe transform 2) and as CMYK without an Adobe marker:
    # odd colours, but libjpeg's YCCK path and Pillow's "always Adobe polarity" must match ours.
    cmyk = (OUT / "cmyk.jpg").read_bytes()
    adobe = cmyk.index(b"\xff\xee")
    length = struct.unpack(">H", cmyk[adobe + 2:adobe + 4])[0]
    assert cmyk[adobe + 4:adobe + 9] == b"Adobe" and cmyk[adobe + 4 + 11] == 0
    ycck = bytearray(cmyk)
    ycck[adobe + 4 + 11] = 2
    (OUT / "ycck.jpg").write_bytes(bytes(ycck))
    with Image.open(OUT / "ycck.jpg") as im:
        assert im.mode == "CMYK" and im.info.get("adobe_transform") == 2
    expect_pillow("ycck.jpg")
    (OUT / "cmyk_no_adobe.jpg").write_bytes(cmyk[:adobe] + cmyk[adobe + 2 + length:])
    with Image.open(OUT / "cmyk_no_adobe.jpg") as im:
        assert im.mode == "CMYK" and "adobe" not in im.info
    expect_pillow("cmyk_no_adobe.jpg")

    # PNG variants.
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.save(OUT / "palette.png", transparency=3)  # a tRNS chunk, which must be ignored
    expect_pillow("palette.png")
    ys, xs = np.mgrid[0:base.height, 0:base.width]
    alpha = ((xs * 255) // max(base.width - 1, 1) ^ (ys * 7)).astype(np.uint8)  # 0..255, varied
    rgba = np.dstack([np.asarray(base), alpha])
    Image.fromarray(rgba, "RGBA").save(OUT / "rgba.png")
    expect_pillow("rgba.png")
    base.convert("L").save(OUT / "gray.png")
    expect_pillow("gray.png")
    Image.fromarray(np.dstack([np.asarray(base.convert("L")), alpha]), "LA").save(OUT / "gray_alpha.png")
    expect_pillow("gray_alpha.png")
    base.convert("1").save(OUT / "bilevel.png")
    expect_pillow("bilevel.png")
    write_interlaced_png(OUT / "interlaced.png", np.asarray(base))
    interlaced = expect_pillow("interlaced.png")
    assert interlaced.tobytes() == base.tobytes()

    # 16-bit: the high byte is the photo, the low byte noise, so taking the wrong byte shows.
    rng = np.random.default_rng(7)
    high = np.asarray(base).astype(np.uint16)
    rgb16 = (high << 8) | rng.integers(0, 256, size=high.shape, dtype=np.uint16)
    cv2.imwrite(str(OUT / "rgb16.png"), np.ascontiguousarray(rgb16[:, :, ::-1]))  # OpenCV is BGR
    gray16 = (np.asarray(base.convert("L")).astype(np.uint16) << 8) | rng.integers(
        0, 256, size=(base.height, base.width), dtype=np.uint16)
    cv2.imwrite(str(OUT / "gray16.png"), gray16)
    for name in ["rgb16.png", "gray16.png"]:
        expected = opencv_rgb(OUT / name)
        with Image.open(OUT / name) as im:
            assert im.mode in ("RGB", "I;16", "I;16B", "I"), im.mode  # really 16-bit on disk
        entries.append(entry(f"formats/{name}", expected.shape[1], expected.shape[0],
                             expected.tobytes(), "OpenCV imread (16-bit: high byte), BGR->RGB"))
    assert (opencv_rgb(OUT / "rgb16.png") == np.asarray(base)).all()

    # A PNG named .jpg: the format comes from the bytes.
    (OUT / "png_named.jpg").write_bytes((OUT / "gray.png").read_bytes())
    expect_pillow("png_named.jpg")

    # EXIF orientation 1-8 on a non-square image; OpenCV's imread must agree with Pillow.
    for value in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = value
        name = f"orientation_{value}.jpg"
        save_jpeg(base, OUT / name, exif=exif.tobytes())
        image = expect_pillow(name, transpose=True)
        assert (opencv_rgb(OUT / name) == np.asarray(image)).all(), f"OpenCV disagrees on {name}"
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(OUT / "orientation_6.png", exif=exif.tobytes())
    image = expect_pillow("orientation_6.png", transpose=True)
    same = (opencv_rgb(OUT / "orientation_6.png") == np.asarray(image)).all()
    print(f"  orientation_6.png (eXIf chunk): OpenCV applies it like Pillow: {same}")

    # Malformed Exif blocks: decoders must ignore them (orientation 1), not fail.
    jpeg = (OUT / "baseline.jpg").read_bytes()
    bad_offset = app1(b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 0xFFFFFF00))
    (OUT / "exif_bad_offset.jpg").write_bytes(insert_after_soi(jpeg, bad_offset))
    # IFD0 claims 500 entries; the first is an orientation tag cut in the middle.
    cut_ifd = app1(b"Exif\x00\x00" + b"II\x2a\x00" + struct.pack("<IH", 8, 500) + b"\x12\x01\x03")
    (OUT / "exif_cut_ifd.jpg").write_bytes(insert_after_soi(jpeg, cut_ifd))
    for name in ["exif_bad_offset.jpg", "exif_cut_ifd.jpg"]:
        entries.append(entry(f"formats/{name}", baseline.width, baseline.height, rgb_bytes(baseline),
                             "the same pixels as baseline.jpg (orientation 1)"))

    # Broken files: each must give an error naming the file.
    (OUT / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 6 // 10])
    progressive = (OUT / "progressive.jpg").read_bytes()
    (OUT / "truncated_progressive.jpg").write_bytes(progressive[: len(progressive) * 6 // 10])
    png = bytearray((OUT / "gray.png").read_bytes())
    idat = png.index(b"IDAT")
    damaged = bytearray(png)
    damaged[idat + 40] ^= 0x55  # inside the compressed data: zlib fails before the CRC is seen
    (OUT / "corrupt_data.png").write_bytes(bytes(damaged))
    damaged = bytearray(png)
    idat_end = idat + 4 + struct.unpack(">I", png[idat - 4:idat])[0]
    damaged[idat_end] ^= 0x01  # the IDAT CRC itself (Pillow does not check it; libpng does)
    (OUT / "bad_crc.png").write_bytes(bytes(damaged))
    (OUT / "truncated.png").write_bytes((OUT / "gray.png").read_bytes()[: len(png) * 7 // 10])
    (OUT / "not_an_image.jpg").write_bytes(b"This is a text file, not a JPEG.\n")
    for name in ["truncated.jpg", "truncated_progressive.jpg", "corrupt_data.png", "truncated.png"]:
        try:
            pillow_rgb(OUT / name)
        except (OSError, SyntaxError) as error:
            print(f"  Pillow refuses {name}: {error}")
        else:
            sys.exit(f"Pillow decoded {name}; it should be broken")
    return entries


def resize_case(name: str, source: dict, image: Image.Image, width: int, height: int) -> dict:
    out = image.resize((width, height), Image.Resampling.BILINEAR)
    data = rgb_bytes(out)
    case = {"name": name, "source": source, "width": width, "height": height,
            "fnv1a64": fnv1a64(data)}
    if width * height <= 4096:
        case["rgb_base64"] = base64.b64encode(data).decode()
    return case


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"Pillow {PIL.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}")
    from mobile_sam.utils.transforms import ResizeLongestSide

    photos = {name: pillow_rgb(FIXTURES / "images" / name) for name in PHOTOS}
    decode_entries = []
    for name, image in photos.items():
        same = (opencv_rgb(FIXTURES / "images" / name) == np.asarray(image)).all()
        print(f"  {name}: {image.width}x{image.height}, OpenCV == Pillow: {same}")
        decode_entries.append(entry(f"images/{name}", image.width, image.height, rgb_bytes(image),
                                    "Pillow convert('RGB')"))

    # A 300x200 crop of picture3 (car, bicycle, shop signs) as the content of the format files.
    base = photos["picture3.jpg"].crop((700, 500, 1600, 1100)).resize((300, 200), Image.Resampling.LANCZOS)
    format_entries = make_format_fixtures(base)

    resize_cases = []
    transform = ResizeLongestSide(1024)
    for name, image in photos.items():
        h, w = transform.get_preprocess_shape(image.height, image.width, 1024)
        reference = transform.apply_image(np.asarray(image))  # torchvision -> Pillow
        case = resize_case(f"{name} longest side 1024", {"file": f"images/{name}"}, image, w, h)
        assert fnv1a64(reference.tobytes()) == case["fnv1a64"], "ResizeLongestSide != Pillow"
        resize_cases.append(case)
    picture3 = photos["picture3.jpg"]
    picture1 = photos["picture1.jpg"]
    full = picture3.resize((1024, 685), Image.Resampling.BILINEAR)
    full.save(OUT / "picture3_resized_1024x685.png", optimize=True)
    resize_cases += [
        resize_case("extreme downscale", {"file": "images/picture3.jpg"}, picture3, 37, 25),
        resize_case("vertical pass only", {"file": "images/picture3.jpg"}, picture3, 2241, 700),
        resize_case("horizontal pass only", {"file": "images/picture3.jpg"}, picture3, 900, 1500),
        resize_case("one row", {"file": "images/picture3.jpg"}, picture3, 1024, 1),
        resize_case("upscale", {"file": "images/picture1.jpg", "crop": [300, 200, 50, 40]},
                    picture1.crop((300, 200, 350, 240)), 173, 131),
        # Pillow 13 runs the vertical pass first when the width grows and the height shrinks.
        resize_case("wider and shorter", {"file": "images/picture1.jpg"}, picture1, 1500, 300),
        resize_case("wider and slightly shorter", {"file": "images/picture1.jpg"}, picture1, 800, 700),
        resize_case("narrower and taller", {"file": "images/picture1.jpg"}, picture1, 300, 1500),
        resize_case("both larger", {"file": "images/picture1.jpg"}, picture1, 1600, 900),
    ]
    rng = np.random.default_rng(11)
    for (w, h), (ow, oh) in [((1, 1), (5, 7)), ((3, 2), (7, 5)), ((3, 2), (1, 1)), ((5, 4), (2, 9)), ((3, 5), (7, 2))]:
        tiny = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        source = {"width": w, "height": h, "rgb_base64": base64.b64encode(tiny.tobytes()).decode()}
        resize_cases.append(resize_case(f"tiny {w}x{h} -> {ow}x{oh}", source,
                                        Image.fromarray(tiny, "RGB"), ow, oh))

    shapes = []
    for w, h, target in [(2241, 1500, 1024), (769, 770, 1024), (1, 1, 1024), (1, 3000, 1024),
                         (3000, 1, 1024), (1000, 333, 1024), (333, 1000, 1024), (1025, 511, 1024),
                         (640, 480, 1024), (4032, 3024, 1024), (2049, 1023, 1024), (997, 13, 256),
                         (7, 5, 3), (1920, 1080, 1)]:
        new_h, new_w = ResizeLongestSide.get_preprocess_shape(h, w, target)
        shapes.append({"width": w, "height": h, "target": target, "new_width": new_w,
                       "new_height": new_h})

    manifest = {
        "preprocess_shapes": shapes,
        "generator": "Scripts/make_image_fixtures.py",
        "versions": {"pillow": PIL.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "hash": "FNV-1a 64 of the interleaved RGB bytes, rows top to bottom",
        "photos": decode_entries,
        "formats": format_entries,
        "resize": resize_cases,
        "resize_full": {"file": "formats/picture3_resized_1024x685.png", "source": "images/picture3.jpg",
                        "width": 1024, "height": 685},
    }
    (OUT / "expected.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB, to {OUT}")


if __name__ == "__main__":
    main()
