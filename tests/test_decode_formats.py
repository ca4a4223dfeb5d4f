"""The formats cameras and phones write: TIFF, AVIF, HEIC/HEIF (with pillow-heif), and the
first frame of a multi-frame file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.decode import EXTENSIONS, UnsupportedFormat, decode_image
from imgsearch.discover import discover
from tests.test_decode import encoded, half_red_half_blue

RED, GREEN = (255, 0, 0), (0, 160, 0)


def mostly(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixels.reshape(-1, 3).mean(axis=0) - np.array(colour)).max() < 30)


@pytest.mark.parametrize("fmt", ["TIFF", "AVIF"])
def test_tiff_and_avif_decode(fmt: str) -> None:
    decoded = decode_image(encoded(half_red_half_blue((640, 480)), fmt))
    assert decoded.pixels.shape == (224, 224, 3) and (decoded.width, decoded.height) == (640, 480)
    assert mostly(decoded.pixels[:, :100], RED) and mostly(decoded.pixels[:, 124:], (0, 0, 255))


@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "WEBP"])
def test_a_multi_frame_file_indexes_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (300, 200), colour) for colour in (GREEN, RED, (0, 0, 255))]
    data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:])
    with Image.open(__import__("io").BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3
    assert mostly(decode_image(data).pixels, GREEN)


def test_heic_decodes_with_pillow_heif() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    image = half_red_half_blue((640, 480))
    heif = pillow_heif.from_pillow(image)
    buffer = __import__("io").BytesIO()
    heif.save(buffer, quality=90)
    decoded = decode_image(buffer.getvalue())
    assert (decoded.width, decoded.height) == (640, 480) and mostly(decoded.pixels[:, :100], RED)


def test_heic_without_pillow_heif_is_a_clear_reason(tmp_path: Path) -> None:
    """In a process where pillow-heif cannot be imported, as on an installation without it."""
    pillow_heif = pytest.importorskip("pillow_heif")  # only to make a HEIC file here
    heic = tmp_path / "phone.heic"
    pillow_heif.from_pillow(half_red_half_blue()).save(str(heic), quality=80)
    script = (
        "import sys; sys.modules['pillow_heif'] = None\n"
        "from imgsearch.decode import decode_image, UnsupportedFormat\n"
        f"try:\n    decode_image(open({str(heic)!r}, 'rb').read())\n"
        "except UnsupportedFormat as error:\n    print(error.status, error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ("415 HEIC/HEIF image: decoding it needs pillow-heif "
                                   "(pip install pillow-heif, or imgsearch[heif])")


def test_the_new_formats_are_discovered(tmp_path: Path) -> None:
    assert {".tif", ".tiff", ".avif", ".heic", ".heif"} <= EXTENSIONS
    for name, fmt in (("a.tif", "TIFF"), ("b.TIFF", "TIFF"), ("c.avif", "AVIF")):
        (tmp_path / name).write_bytes(encoded(half_red_half_blue(), fmt))
    (tmp_path / "d.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    found = sorted(Path(image.path).name for image in discover(tmp_path).images)
    assert found == ["a.tif", "b.TIFF", "c.avif", "d.heic"]
    assert UnsupportedFormat.status == 415
