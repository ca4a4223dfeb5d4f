"""The process' encoder for the settings, built once: ResNet50 on Keras
(`encoder.py`) for fp32 and bf16, quantised on LiteRT (`litert.py`) for dynamic
and int8. Both have the same `name`, `batch_size` and `embed`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from imgsearch.encoder import Encoder, Pooling, Precision
from imgsearch.litert import PRECISIONS as LITERT_PRECISIONS
from imgsearch.litert import LiteRTEncoder

AnyEncoder = Encoder | LiteRTEncoder
_ENCODERS: dict[tuple[str, str, int, str], AnyEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(
    weights: Path, pooling: Pooling = "avg", batch_size: int = 32, precision: Precision = "fp32"
) -> AnyEncoder:
    """The process' encoder for these weights, pooling and precision, built on first use."""
    key = (str(weights), pooling, batch_size, precision)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            if precision in LITERT_PRECISIONS:
                _ENCODERS[key] = LiteRTEncoder(weights, pooling, precision)
            else:
                _ENCODERS[key] = Encoder(weights, pooling, batch_size, precision)
        return _ENCODERS[key]
