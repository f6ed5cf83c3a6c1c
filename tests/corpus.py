"""A corpus of hostile and odd uploads, generated here (nothing downloaded).

``corpus()`` returns (file name, bytes, expectation): ``"ok"`` for files that must be analysed, or a
regular expression the error message must match.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, ImageCms

from cbam_viz.app.images import Limits

TRUNCATED = "truncated|corrupt|damaged"


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w: int = 96, h: int = 64) -> Image.Image:
    """A smooth colour gradient with a marker in the top-left corner (for orientation checks)."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), np.full_like(x, 120)], -1).astype(np.uint8)
    a[: h // 4, : w // 4] = (255, 255, 255)
    return Image.fromarray(a)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small valid PNG whose header declares ``width`` x ``height`` pixels."""
    small = encode(Image.new("L", (10, 10)), "PNG")
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return small[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + small[33:]


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(photo(), "JPEG", exif=exif.tobytes(), quality=92)


def corpus() -> list[tuple[str, bytes, str]]:
    base = photo()
    jpeg, png = encode(base, "JPEG"), encode(base, "PNG")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("notes.txt", "not an image")
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    pages = [Image.new("RGB", (64, 48), c) for c in ((0, 0, 200), (200, 0, 0))]
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))))
    palette = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    items = [
        ("empty.jpg", b"", "empty"),
        ("truncated.jpg", jpeg[: len(jpeg) // 3], TRUNCATED),
        ("truncated.png", png[: len(png) // 2], TRUNCATED),
        ("document.png", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "PDF document"),
        ("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>', "SVG"),
        ("page.png", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", "HTML page"),
        ("archive.png", zipped.getvalue(), "ZIP archive"),
        ("bomb.png", png_bomb(), "megapixels|decompression bomb"),
        ("one-pixel.png", encode(Image.new("RGB", (1, 1), "red"), "PNG"), r"only 1 x 1 pixels"),
        ("sliver.png", encode(Image.new("RGB", (20000, 5), "red"), "PNG"), r"20000 x 5 pixels"),
        ("too-big.jpg", b"\xff\xd8\xff" + b"\x00" * (Limits().max_bytes + 1), f"over the {Limits().max_bytes // 2**20} MB limit"),
        ("random.bin.jpg", np.random.default_rng(0).bytes(4096), "not an image file"),
        ("broken.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "damaged or unsupported HEIC"),
        ("photo.heic", encode(base, "HEIF"), "ok"),
        ("photo.avif", encode(base, "AVIF"), "ok"),
        ("gray16.png", encode(Image.fromarray((np.arange(64 * 96).reshape(64, 96) * 10).astype(np.uint16)), "PNG"), "ok"),
        ("cmyk.jpg", encode(base.convert("CMYK"), "JPEG"), "ok"),
        ("palette-transparent.png", encode(palette, "PNG", transparency=0), "ok"),
        ("gray-alpha.png", encode(base.convert("LA"), "PNG"), "ok"),
        ("rgba.png", encode(rgba, "PNG"), "ok"),
        ("animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0), "ok"),
        ("animated.webp", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100), "ok"),
        ("progressive.jpg", encode(base, "JPEG", progressive=True, quality=85), "ok"),
        ("pages.tiff", encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]), "ok"),
        ("icc-profile.jpg", encode(base, "JPEG", icc_profile=srgb), "ok"),
        ("grayscale.jpg", encode(base.convert("L"), "JPEG"), "ok"),
        ("bitmap.bmp", encode(base, "BMP"), "ok"),
        ("float.tiff", encode(Image.fromarray(np.linspace(0, 1, 64 * 96, dtype=np.float32).reshape(64, 96)), "TIFF"), "ok"),
        ("large.jpg", encode(photo(3000, 2000), "JPEG", quality=80), "ok"),
    ]
    items += [(f"exif-orientation-{o}.jpg", exif_jpeg(o), "ok") for o in range(1, 9)]
    unsupported = {"icon.ico": "ICO", "picture.ppm": "PPM", "targa.tga": "TGA", "paint.pcx": "PCX",
                   "scan.jp2": "JPEG2000", "silicon.sgi": "SGI", "texture.dds": "DDS", "quite-ok.qoi": "QOI"}
    items += [(name, encode(base, fmt), f"{fmt} images are not supported. Upload a JPEG, PNG")
              for name, fmt in unsupported.items()]
    items += [
        ("gray.pgm", encode(base.convert("L"), "PPM"), "PPM images are not supported"),
        ("drawing.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>', "SVG"),
        ("document.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n", "PDF document"),
        ("page.html", b"<html><head><title>x</title></head><body>hello</body></html>", "HTML page"),
        ("empty.heic", b"", "empty"),
        ("lossless.webp", encode(base, "WEBP", lossless=True), "ok"),
        ("phone-48mp.jpg", encode(photo(1000, 750).resize((8000, 6000)), "JPEG", quality=70), "ok"),
        ("phone-100mp.jpg", encode(photo(1220, 820).resize((12200, 8200)), "JPEG", quality=60), "ok"),
        ("declares-250mp.jpg", jpeg_declaring(20000, 12500), "more than 200 megapixels, more than this app will decode"),
        ("../../etc/passwd.png", png, "ok"),
        ("C:\\Users\\teacher\\IMG_0001.jpg", jpeg, "ok"),
        ("../[click me](javascript:alert(1)).png", b"not an image at all", "not an image file"),
    ]
    return items


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small baseline JPEG whose frame header declares ``width`` x ``height`` pixels."""
    data = bytearray(encode(Image.new("RGB", (16, 16), "red"), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def expected_size(name: str) -> tuple[int, int] | None:
    """(width, height) an analysed file must have after EXIF orientation, where the corpus fixes it."""
    if name.startswith("exif-orientation-"):
        return (64, 96) if int(name.rsplit("-", 1)[1].split(".")[0]) >= 5 else (96, 64)
    return None
