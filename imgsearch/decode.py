"""Decode any image file Pillow reads into a 224x224 RGB uint8 array.

EXIF orientation is applied; grayscale, RGBA, CMYK, palette and 16-bit images
become RGB; Pillow's decompression-bomb limit is kept (checked from the header,
before any pixel is decoded). Every failure is a DecodeError with a short reason.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgsearch.errors import BadInput

INPUT_SIZE = 224
ORIENTATION = 0x0112  # the EXIF tag
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".avif",
                        ".heic", ".heif"})
# The major brands of an ISO base media file that is HEIF (HEIC, HEIF image or sequence); AVIF's own
# brands (avif, avis) Pillow decodes itself.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


class DecodeError(BadInput):
    """The bytes are not an image this system can use; the message says why."""


class EmptyImage(DecodeError):
    """Zero bytes."""

    status = 400


class ImageTooLarge(DecodeError):
    """More pixels than Pillow's decompression-bomb limit."""

    status = 413


class NotAnImage(DecodeError):
    """Not a format Pillow can identify."""

    status = 415


class UnsupportedFormat(DecodeError):
    """An image in a format this installation cannot decode; the message says what would."""

    status = 415


class CorruptImage(DecodeError):
    """Truncated, or broken inside: 422."""


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (224, 224, 3) uint8, RGB
    width: int  # of the original, after EXIF rotation
    height: int


def resample(image: Image.Image, size: int) -> Image.Image:
    """`image` squashed to `size`x`size`: every encoder input is made here, whether from a file
    (`decode_image`) or from pixels already decoded at another size (multi-scale), so both agree."""
    return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


def decode_image(data: bytes, size: int = INPUT_SIZE) -> DecodedImage:
    """Decode `data` into a `size`x`size` RGB array, or raise DecodeError."""
    if not data:
        raise EmptyImage("empty file (0 bytes)")
    heif = _is_heif(data)
    if heif and not heif_support():
        raise UnsupportedFormat("HEIC/HEIF image: decoding it needs pillow-heif "
                                "(pip install pillow-heif, or imgsearch[heif])")
    try:
        # A multi-frame file (TIFF pages, GIF or WebP animation) opens on its first frame.
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels(image)
            width, height = image.size
            if image.format == "JPEG":
                # DCT scaling: decode big JPEGs at 1/2..1/8 size, never below `size`.
                image.draft("RGB", (size, size))
            image.load()
            orientation = image.getexif().get(ORIENTATION, 1)
            # exif_transpose copies an upright image too: half a millisecond of every photo.
            oriented = image if orientation == 1 else ImageOps.exif_transpose(image)
            if orientation in (5, 6, 7, 8):  # turned by a quarter: the axes swap
                width, height = height, width
            rgb = to_rgb(oriented)
            return DecodedImage(np.asarray(resample(rgb, size), dtype=np.uint8), width, height)
    except DecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"decompression bomb: {error}") from None
    except UnidentifiedImageError:
        raise NotAnImage("not an image (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError, IndexError, TypeError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason:
            raise CorruptImage("truncated image") from None
        raise CorruptImage(f"corrupt image: {reason[:200]}") from None


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


@functools.cache
def heif_support() -> bool:
    """Whether pillow-heif is installed; once it is, Pillow opens HEIC/HEIF files too."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _check_pixels(image: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    width, height = image.size
    if limit is not None and width * height > limit:
        raise ImageTooLarge(
            f"decompression bomb: {width}x{height} = {width * height} pixels exceeds the limit of {limit}"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited over white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(image).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float images: scale their range to 0..255 instead of clipping."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
    else:
        low, high = 0.0, 65535.0 if values.max() > 255 else 255.0
    span = high - low or 1.0
    scaled = np.clip((values - low) * (255.0 / span), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)  # 2-D uint8: mode L
