"""Which ResNet50 runs a precision: Keras (`encoder.py`) for fp32 and bf16, quantised
on LiteRT (`litert.py`) for dynamic and int8. Both have the same `name`,
`batch_size` and `embed`. A process keeps the one it built: `resources.encoder`.
"""

from __future__ import annotations

from pathlib import Path

from imgsearch.encoder import Encoder, Pooling
from imgsearch.litert import PRECISIONS as LITERT_PRECISIONS
from imgsearch.litert import LiteRTEncoder
from imgsearch.settings import Precision

AnyEncoder = Encoder | LiteRTEncoder


def build_encoder(weights: Path, pooling: Pooling, batch_size: int, precision: Precision) -> AnyEncoder:
    if precision in LITERT_PRECISIONS:
        return LiteRTEncoder(weights, pooling, precision)
    return Encoder(weights, pooling, batch_size, precision)
