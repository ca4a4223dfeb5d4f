"""Multi-scale descriptors: an image's vector as the normalised sum of its vectors at several
input sizes (the same network, fully convolutional below its pooling).

ResNet50 sees an image at 224x224 here. At 1/√2 of that (158) its last map is 5x5, at √2 (317)
10x10: the same photo's objects fall on other units, and averaging the pooled vectors over the
scales is the standard, training-free multi-scale descriptor of instance retrieval (Radenović,
Tolias and Chum 2018, for GeM). It costs a forward pass per scale: about 0.5x, 1x and 2x the
224 pass's arithmetic. `imgsearch eval --scales` measures it (`evaluation`); nothing indexes
with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from imgsearch.decode import INPUT_SIZE
from imgsearch.pooling import pool, unit_vectors

DEFAULT_SCALES = (1 / math.sqrt(2), 1.0, math.sqrt(2))
SMALLEST = 64  # pixels: below this ResNet50's last map is 1x1 or less
AT_ONCE = 128  # images decoded, run and pooled at a time: the maps at 317 are 800 KB an image

Maps = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) uint8 -> (N, h, w, 2048) float32
Pixels = Callable[[Image.Image, int], np.ndarray]  # an image at S x S, as the system decodes it


def size_of(scale: float) -> int:
    return max(SMALLEST, round(INPUT_SIZE * scale))


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
