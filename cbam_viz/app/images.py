"""Turn uploaded bytes into a validated RGB image, or a clear message saying why not.

Handles what phones and the web produce: HEIC/HEIF (through pillow-heif) and AVIF, EXIF
orientation, alpha (composited on white), palette, grayscale, 16-bit, CMYK, ICC profiles
(converted to sRGB), animated GIF/WebP and multi-page TIFF (first frame), with limits on file size
and pixel count checked *before* decoding, so a decompression bomb is rejected without being
expanded. A JPEG of up to 200 megapixels (today's phone cameras) is decoded at a reduced scale
(Pillow's draft mode: 1/2, 1/4 or 1/8 in the decoder) to at most the pixel limit of other images.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from dataclasses import dataclass

import math

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF",
           "HEIF": "HEIC", "AVIF": "AVIF"}
KINDS = "JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF or TIFF"
log = logging.getLogger(__name__)

register_heif_opener()  # pillow-heif's documented way to let Image.open read HEIC/HEIF
# Pillow's own decompression-bomb backstop (an error above twice this) must not refuse a 200 MP
# JPEG before load_image's stricter checks, which use the declared size and decode nothing.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 100_000_000)


@dataclass(frozen=True)
class Limits:
    """What an upload may be. The defaults suit a phone photo and a 2-core server."""

    max_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_jpeg_pixels: int = 200_000_000  # decoded at 1/2, 1/4 or 1/8 scale to at most max_pixels
    min_side: int = 8
    max_aspect: float = 10.0


def file_label(name: str) -> str:
    """An uploaded file's name as the page uses it: without any folders that a browser or a crafted
    request put in it."""
    return re.split(r"[\\/]", name)[-1].strip() or "the upload"


def markdown_text(text: str) -> str:
    """``text`` with Markdown's special characters escaped, so that a name shows as typed (a dot only
    where it would start a numbered list: after leading digits)."""
    escaped = re.sub(r"([\\`*_{}\[\]()#+\-!|<>~$:])", r"\\\1", text)
    return re.sub(r"^(\d+)\.", r"\1\\.", escaped)


class ImageError(ValueError):
    """An upload that cannot be analysed; the message is meant for the user."""


def _what_is_it(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "a PDF document"
    if head.startswith(b"pk\x03\x04"):
        return "a ZIP archive (or an Office document)"
    if b"<svg" in head:
        return "an SVG drawing (vector graphics are not supported; export it as PNG)"
    if head.startswith(b"<!doctype html") or b"<html" in head:
        return "an HTML page"
    if b"ftyp" in head[:12]:
        return "a damaged or unsupported HEIC/AVIF file"
    return "not an image file this app can read"


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: alpha on white, 16-bit scaled, CMYK and ICC profiles to sRGB."""
    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "La"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    if icc and im.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: use the pixels as they are
    return im.convert("RGB")


def load_image(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Decode upload bytes into an RGB image with EXIF orientation applied, or raise :class:`ImageError`."""
    if not data:
        raise ImageError("The file is empty (0 bytes).")
    if len(data) > limits.max_bytes:
        raise ImageError(f"The file is {len(data) / 2**20:.2f} MB, over the {limits.max_bytes / 2**20:.0f} MB limit.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limits below decide
            im = Image.open(io.BytesIO(data))  # reads the header only
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if isinstance(e, UnidentifiedImageError):
            raise ImageError(f"This file is {_what_is_it(data)}. Upload a {KINDS} image.") from None
        raise ImageError(f"The image declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, more than this "
                         "app will decode: resize it first (or it is a decompression bomb).") from None
    except (OSError, ValueError, SyntaxError) as e:
        if "truncat" in str(e).lower():
            raise ImageError("The file is truncated or corrupt: its header is incomplete.") from None
        log.info("unreadable image header: %s", e)  # the library's words go to the server log, not the page
        raise ImageError("The image header is damaged and cannot be read. Try saving the image again as JPEG or "
                         "PNG.") from None
    if im.format not in FORMATS:
        raise ImageError(f"{im.format} images are not supported. Upload a {KINDS} image.")
    w, h = im.size
    jpeg = FORMATS[im.format] == "JPEG"
    most = limits.max_jpeg_pixels if jpeg else limits.max_pixels
    if w * h > most:
        raise ImageError(
            f"The image is {w:,} x {h:,} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
            f"{most / 1e6:.0f} megapixels{' for a JPEG' if jpeg else ''}. Resize it first."
        )
    if jpeg and w * h > limits.max_pixels:  # decode at 1/2^n scale: at most max_pixels
        if len(data) * 2000 < w * h:  # even a one-colour photo takes more than a byte per 2000 pixels
            raise ImageError(f"The file ({len(data):,} bytes) is far too small for the {w * h / 1e6:.0f} megapixels it "
                             "declares: a damaged file or a decompression bomb.")
        n = math.ceil(math.log2(math.sqrt(w * h / limits.max_pixels)))
        im.draft("RGB", (math.ceil(w / 2**n), math.ceil(h / 2**n)))
    if min(w, h) < limits.min_side:
        raise ImageError(f"The image is only {w} x {h} pixels; at least {limits.min_side} x {limits.min_side} is needed.")
    if max(w, h) / min(w, h) > limits.max_aspect:
        raise ImageError(f"The image is {w} x {h} pixels, an aspect ratio above {limits.max_aspect:.0f}:1; crop it first.")
    try:
        im.seek(0)  # first frame of an animation or page of a TIFF
        im.load()
        im = ImageOps.exif_transpose(im)
        return _to_rgb(im)
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        log.info("image data not decodable: %s", e)
        reason = "truncated or corrupt" if "truncat" in str(e).lower() or isinstance(e, EOFError) else "unreadable"
        raise ImageError(f"The {FORMATS[im.format]} file is {reason}.") from None
