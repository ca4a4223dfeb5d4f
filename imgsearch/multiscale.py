"""Multi-scale descriptors: an image's vector as the normalised sum of its vectors at several
input sizes (the same network, fully convolutional below its pooling).

ResNet50 sees an image at 224x224 here. At 1/√2 of that (158) its last map is 5x5, at √2 (317)
10x10: the same photo's objects fall on other units, and averaging the pooled vectors over the
scales is the standard, training-free multi-scale descriptor of instance retrieval (Radenović,
Tolias and Chum 2018, for GeM). It costs a forward pass per scale: about 0.5x, 1x and 2x the
224 pass's arithmetic. `imgsearch eval --scales` measures it (`evaluation`, each size decoded
from the file); `SCALES` indexes and searches with it (`MultiScaleEncoder`: decoded once at the
largest size, the smaller ones resized from that, as decoding resizes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from imgsearch.decode import INPUT_SIZE, resample
from imgsearch.encoder import FEATURE_DIM, check_pixels
from imgsearch.encoder_names import encoder_name
from imgsearch.pooling import pool, unit_vectors

DEFAULT_SCALES = (1 / math.sqrt(2), 1.0, math.sqrt(2))
SMALLEST = 64  # pixels: below this ResNet50's last map is 1x1 or less
AT_ONCE = 128  # images decoded, run and pooled at a time: the maps at 317 are 800 KB an image

Maps = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) uint8 -> (N, h, w, 2048) float32
Pixels = Callable[[Image.Image, int], np.ndarray]  # an image at S x S, as the system decodes it


def size_of(scale: float) -> int:
    return max(SMALLEST, round(INPUT_SIZE * scale))


def sizes_of(scales: Sequence[float]) -> tuple[int, ...]:
    """The input sizes `scales` describe an image at, smallest first, each once."""
    return tuple(sorted({size_of(scale) for scale in scales}))


def resized(pixels: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, size, size, 3), resampled by `decode.resample`, as files are."""
    if pixels.shape[1] == size:
        return pixels
    return np.stack([np.asarray(resample(Image.fromarray(image), size)) for image in pixels])


class SizedEncoder(Protocol):
    @property
    def pooling(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def input_size(self) -> int: ...

    def embed(self, pixels: np.ndarray, *, urgent: bool = False) -> np.ndarray: ...


class MultiScaleEncoder:
    """Several encoders of one network, one per input size, as one: pixels at the largest
    size in, each image's unit vectors at every size summed and normalised out. The parts
    share one pass lock, so a search waits for one pass, not for a whole multi-scale batch."""

    def __init__(self, parts: Sequence[SizedEncoder]) -> None:
        self.parts = sorted(parts, key=lambda part: part.input_size)
        largest = self.parts[-1]
        self.pooling, self.precision = largest.pooling, largest.precision
        self.batch_size = largest.batch_size
        self.input_size = largest.input_size
        self.sizes = tuple(part.input_size for part in self.parts)
        self.name = encoder_name(self.pooling, self.precision, self.sizes)

    def embed(self, pixels: np.ndarray, *, urgent: bool = False) -> np.ndarray:
        """(N, S, S, 3) uint8 at the largest size -> (N, 2048) float32 unit vectors."""
        check_pixels(pixels, self.input_size)
        total = np.zeros((len(pixels), FEATURE_DIM), dtype=np.float32)
        for part in self.parts:
            total += part.embed(resized(pixels, part.input_size), urgent=urgent)
        return unit_vectors(total)


def describe(images: Sequence[Image.Image], maps_of: Maps, pixels_of: Pixels, pooling: str,
             scales: Sequence[float]) -> tuple[np.ndarray, dict[int, float]]:
    """Each image's unit vector summed over `scales`, normalised; and the seconds each input
    size took (decoding, network and pooling), by size."""
    total = np.zeros((len(images), 0), dtype=np.float32)
    seconds: dict[int, float] = {}
    for scale in scales:
        size = size_of(scale)
        started = time.perf_counter()
        parts = [pool(maps_of(np.stack([pixels_of(image, size) for image in images[start : start + AT_ONCE]])), pooling)
                 for start in range(0, len(images), AT_ONCE)]
        vectors = np.concatenate(parts)
        seconds[size] = time.perf_counter() - started
        total = vectors if total.shape[1] == 0 else total + vectors
    return unit_vectors(total), seconds
