"""Upload validation: odd but valid images are analysed correctly, bad files get specific messages."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cbam_viz.app.images import ImageError, Limits, load_image


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def arrow(size=(60, 40)) -> Image.Image:
    """A red image with a green square in its top-left corner, to check orientation."""
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[..., 0] = 200
    a[:10, :10] = (0, 255, 0)
    return Image.fromarray(a)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_formats_decode_to_rgb(fmt):
    im = load_image(encode(arrow(), fmt))
    assert im.mode == "RGB" and im.size == (60, 40)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = encode(arrow(), "JPEG", exif=exif.tobytes(), quality=95)
    im = np.asarray(load_image(raw))
    expected = {1: (40, 60), 2: (40, 60), 3: (40, 60), 4: (40, 60), 5: (60, 40), 6: (60, 40), 7: (60, 40), 8: (60, 40)}
    assert im.shape[:2] == expected[orientation]
    # where the green corner ends up after the EXIF transform, computed independently by PIL's transpose table
    ref = np.asarray(arrow())
    ops = {2: [np.fliplr], 3: [lambda a: np.rot90(a, 2)], 4: [np.flipud], 5: [lambda a: np.rot90(a, 1), np.flipud],
           6: [lambda a: np.rot90(a, -1)], 7: [lambda a: np.rot90(a, -1), np.flipud], 8: [lambda a: np.rot90(a, 1)]}
    for op in ops.get(orientation, []):
        ref = op(ref)
    green = im[..., 1] > 128
    assert (green ^ (ref[..., 1] > 128)).mean() < 0.01  # JPEG blurs the square's edge by a pixel


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    im = np.asarray(load_image(encode(rgba, "PNG")))
    assert (im == 255).all()


def test_palette_with_transparency_and_grayscale_and_16bit():
    p = Image.new("P", (16, 16), 0)
    p.putpalette([0, 0, 255] + [0] * 765)
    assert np.asarray(load_image(encode(p, "PNG", transparency=0)))[0, 0].tolist() == [255, 255, 255]
    gray = Image.fromarray(np.full((16, 16), 77, np.uint8), "L")
    assert np.asarray(load_image(encode(gray, "PNG")))[0, 0].tolist() == [77, 77, 77]
    deep = Image.fromarray(np.full((16, 16), 65535, np.uint16))
    assert np.asarray(load_image(encode(deep, "PNG")))[0, 0].tolist() == [255, 255, 255]


def test_cmyk_and_first_frame_of_animation():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in CMYK
    r, g, b = np.asarray(load_image(encode(cmyk, "JPEG")))[8, 8]
    assert r > 200 and g < 60 and b < 60
    frames = [Image.new("RGB", (16, 16), c) for c in ((0, 0, 255), (255, 0, 0))]
    raw = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(raw))[8, 8, 2] > 200  # blue: the first frame


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"%PDF-1.4\n%...", "PDF document"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page"),
])
def test_non_images_are_named(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_zip_renamed_png_and_truncated_files():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "x")
    with pytest.raises(ImageError, match="ZIP archive"):
        load_image(buf.getvalue())
    jpeg = encode(arrow((200, 200)), "JPEG")
    with pytest.raises(ImageError, match="truncated|corrupt|damaged"):
        load_image(jpeg[: len(jpeg) // 3])
    png = encode(arrow((200, 200)), "PNG")
    with pytest.raises(ImageError, match="truncated|corrupt|damaged"):
        load_image(png[: len(png) // 2])


def test_limits():
    with pytest.raises(ImageError, match="over the 1 MB limit"):
        load_image(b"\xff" * (2 * 2**20), Limits(max_bytes=2**20))
    with pytest.raises(ImageError, match=r"only 1 x 1 pixels"):
        load_image(encode(Image.new("RGB", (1, 1)), "PNG"))
    with pytest.raises(ImageError, match="aspect ratio"):
        load_image(encode(Image.new("RGB", (2000, 50)), "PNG"))
    with pytest.raises(ImageError, match="megapixels"):
        load_image(encode(Image.new("RGB", (3000, 3000)), "PNG"), Limits(max_pixels=1_000_000))


def test_decompression_bomb_is_rejected_without_decoding():
    # a PNG header that declares 100,000 x 100,000 pixels
    small = encode(Image.new("L", (10, 10)), "PNG")
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    bomb = small[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + small[33:]
    with pytest.raises(ImageError, match="megapixels|decompression bomb"):
        load_image(bomb)


def _declare_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) declaring another size: a tiny file, a huge claim."""
    import struct

    at = jpeg.index(b"\xff\xc0") + 5  # marker, length (2), precision (1)
    return jpeg[:at] + struct.pack(">HH", height, width) + jpeg[at + 4:]


def test_phone_jpegs_up_to_200_megapixels_decode_at_reduced_size():
    big = encode(Image.new("RGB", (12_000, 8_400), (30, 120, 200)), "JPEG", quality=60)  # 100.8 MP
    assert len(big) * 2000 > 12_000 * 8_400  # even a one-colour photo passes the size plausibility check
    im = load_image(big)
    assert im.size == (6_000, 4_200) and im.size[0] * im.size[1] <= Limits().max_pixels  # decoded at 1/2
    assert im.getpixel((3000, 2100)) == pytest.approx((30, 120, 200), abs=3)
    small = encode(Image.new("RGB", (64, 48), "red"), "JPEG")
    with pytest.raises(ImageError, match="decompression bomb"):  # declares 300 MP: rejected, nothing decoded
        load_image(_declare_jpeg_size(small, 20_000, 15_000))
    with pytest.raises(ImageError, match="far too small for the 150 megapixels it declares"):  # holds 64x48
        load_image(_declare_jpeg_size(small, 15_000, 10_000))
    with pytest.raises(ImageError, match="limit is 40 megapixels"):  # other formats keep the lower limit
        load_image(encode(Image.new("L", (8_000, 6_000)), "PNG"))


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_photos_are_read_with_their_orientation(fmt):
    arrow_image = arrow((60, 40))
    plain = load_image(encode(arrow_image, fmt))
    assert plain.mode == "RGB" and plain.size == (60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    turned = load_image(encode(arrow_image, fmt, exif=exif.tobytes()))
    assert turned.size == (40, 60)
