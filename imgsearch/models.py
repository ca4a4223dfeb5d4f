"""Which ResNet50 runs a precision: Keras (`encoder.py`) for fp32 and bf16, quantised
on LiteRT (`litert.py`) for dynamic and int8, one per input size of `SCALES`
(`multiscale.py` sums them). All have the same `name`, `batch_size`, `input_size`
and `embed`. A process keeps the one it built: `resources.encoder`.
"""

from __future__ import annotations

from pathlib import Path

from imgsearch.decode import INPUT_SIZE
from imgsearch.encoder import Encoder, PassLock, Pooling
from imgsearch.encoder_names import encoder_name
from imgsearch.litert import PRECISIONS as LITERT_PRECISIONS
from imgsearch.litert import LiteRTEncoder
from imgsearch.multiscale import MultiScaleEncoder, sizes_of
from imgsearch.settings import Precision, Settings

AnyEncoder = Encoder | LiteRTEncoder | MultiScaleEncoder


def build_encoder(weights: Path, pooling: Pooling, batch_size: int, precision: Precision,
                  sizes: tuple[int, ...] = (INPUT_SIZE,)) -> AnyEncoder:
    lock = PassLock()  # one pass at a time over all of a multi-scale encoder's parts
    parts: list[Encoder | LiteRTEncoder] = [
        LiteRTEncoder(weights, pooling, precision, input_size=size, lock=lock) if precision in LITERT_PRECISIONS
        else Encoder(weights, pooling, batch_size, precision, input_size=size, lock=lock)
        for size in sizes
    ]
    return parts[0] if len(parts) == 1 else MultiScaleEncoder(parts)


def name_of(settings: Settings) -> str:
    """The name of the encoder `settings` build, without building it: what a collection must record."""
    return encoder_name(settings.pooling, settings.precision, sizes_of(settings.scales))
