from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imgsearch.decode import CorruptImage, DecodeError, EmptyImage, ImageTooLarge, NotAnImage, decode_image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def half_red_half_blue(size: tuple[int, int] = (400, 200)) -> Image.Image:
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return image


def test_jpeg_becomes_224_rgb_and_keeps_original_size() -> None:
    decoded = decode_image(encoded(half_red_half_blue((1000, 500)), "JPEG", quality=95))
    assert decoded.pixels.shape == (224, 224, 3) and decoded.pixels.dtype == np.uint8
    assert (decoded.width, decoded.height) == (1000, 500)
    left, right = decoded.pixels[112, 20], decoded.pixels[112, 200]
    assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60


def test_exif_orientation_is_applied() -> None:
    # Stored landscape (red left, blue right) with orientation 6 = "rotate 90° clockwise to view".
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(half_red_half_blue(), "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (200, 400)
    top, bottom = decoded.pixels[10, 112], decoded.pixels[214, 112]
    assert top[0] > 200 and top[2] < 60, "red must be on top after rotating clockwise"
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("1", "BMP"), ("P", "GIF"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("LA", "PNG"),
     ("RGBA", "WEBP"), ("I;16", "PNG")],
)
def test_every_mode_becomes_rgb(mode: str, fmt: str) -> None:
    source = half_red_half_blue().convert(mode) if mode != "I;16" else None
    if mode == "I;16":
        ramp = (np.linspace(0, 65535, 400)[np.newaxis, :].repeat(200, 0)).astype("<u2")
        source = Image.fromarray(ramp)
        assert source.mode == "I;16"
    decoded = decode_image(encoded(source, fmt))
    assert decoded.pixels.shape == (224, 224, 3)
    if mode == "I;16":
        # Scaled, not clipped: dark on the left, bright on the right.
        assert decoded.pixels[112, 5].max() < 30 and decoded.pixels[112, 218].min() > 225


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    decoded = decode_image(encoded(image, "PNG"))
    assert decoded.pixels.min() == 255


def test_palette_with_transparency() -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    data = encoded(image, "GIF", transparency=0)
    assert decode_image(data).pixels.min() == 255


@pytest.mark.parametrize(
    ("data", "reason", "kind"),
    [
        (b"", "empty file", EmptyImage),
        (b"hello, I am text pretending to be a photo", "not an image", NotAnImage),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image", NotAnImage),
    ],
)
def test_unusable_bytes(data: bytes, reason: str, kind: type[DecodeError]) -> None:
    with pytest.raises(kind, match=reason):
        decode_image(data)


def test_truncated_jpeg() -> None:
    data = encoded(half_red_half_blue((800, 600)), "JPEG", quality=95)
    with pytest.raises(CorruptImage, match="truncated|corrupt"):
        decode_image(data[: len(data) // 3])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels but carries no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + end


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        decode_image(png_header_only(30000, 30000))


def test_bomb_limit_is_pillows_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ImageTooLarge, match="exceeds the limit of 10000"):
        decode_image(encoded(half_red_half_blue((200, 100)), "PNG"))
