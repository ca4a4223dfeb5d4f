"""ResNet50 feature extractor: 224x224 RGB uint8 in, L2-normalised 2048-d float32 out.

Keras 3 `ResNet50(include_top=False)` on the TensorFlow backend with Keras'
`resnet50.preprocess_input`. Preprocessing, the network, pooling and
normalisation run as one compiled graph. One model is built per process and
shared by threads; a lock serialises forward passes because TensorFlow already
spreads one pass over every core, and two at once only thrash the caches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from imgsearch import runtime
from imgsearch.decode import INPUT_SIZE
from imgsearch.encoder_names import encoder_name
from imgsearch.pooling import network_pooling, unit_vectors
from imgsearch.settings import Precision
from imgsearch.weights import HOW_TO_PROVIDE, WeightsError

Pooling = Literal["avg", "max", "gem"]
FEATURE_DIM = 2048
T = TypeVar("T")
R = TypeVar("R")


def build_keras_resnet50(weights: Path, pooling: str, precision: str = "fp32",
                         input_size: int | None = INPUT_SIZE) -> Any:
    """Keras' ResNet50 without its top, from `weights`, pooling its last block as
    `pooling` does in the network (`gem` pools nothing there: the model gives the
    7x7x2048 map); a file that does not hold all of its weights is refused.
    `input_size` None: images of any size (the eval's multi-scale descriptors)."""
    keras = runtime.keras()
    # bf16: Keras' mixed_bfloat16 policy (float32 variables, bfloat16 compute),
    # fast where the CPU has AVX512-BF16 or AMX. The policy is global in Keras,
    # so it is set only while this model's layers are built.
    previous = keras.config.dtype_policy()
    if precision == "bf16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = keras.applications.ResNet50(
            include_top=False,
            weights=str(weights),
            input_shape=(input_size, input_size, 3),
            pooling=network_pooling(pooling),
        )
    except (ValueError, OSError, KeyError) as error:
        raise WeightsError(
            f"{weights} does not hold ResNet50 no-top weights ({str(error)[:200]}); {HOW_TO_PROVIDE}"
        ) from None
    finally:
        keras.config.set_dtype_policy(previous)
    untouched = untrained_layers(model)
    if untouched:
        raise WeightsError(
            f"{weights} left {len(untouched)} layers untrained (first: {untouched[0]}); {HOW_TO_PROVIDE}"
        )
    return model


class Encoder:
    """A ResNet50 on Keras built once; `embed` is safe to call from several threads.
    `input_size`: the pixels it takes (224; multi-scale builds one per size, sharing `lock`)."""

    def __init__(
        self, weights: Path, pooling: Pooling = "avg", batch_size: int = 32, precision: Precision = "fp32",
        input_size: int = INPUT_SIZE, lock: PassLock | None = None,
    ) -> None:
        tf = runtime.tensorflow()
        keras = runtime.keras()

        self.pooling = pooling
        self.batch_size = batch_size
        self.precision = precision
        self.input_size = input_size
        self.name = encoder_name(pooling, precision, (input_size,))
        self.model = build_keras_resnet50(weights, pooling, precision, input_size)
        preprocess = keras.applications.resnet50.preprocess_input

        @tf.function(  # type: ignore[untyped-decorator]  # TensorFlow ships no types
            input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.uint8)],
            reduce_retracing=True,
        )
        def forward(pixels: Any) -> Any:
            return tf.cast(self.model(preprocess(tf.cast(pixels, tf.float32)), training=False), tf.float32)

        self._forward = forward
        self._lock = lock or PassLock()
        # Trace the graph now (shape-generic), not inside the first real batch.
        forward(np.zeros((1, input_size, input_size, 3), dtype=np.uint8))

    def embed(self, pixels: np.ndarray, *, urgent: bool = False) -> np.ndarray:
        """(N, input_size, input_size, 3) uint8 -> (N, 2048) float32 unit vectors. `urgent`
        passes (a person waiting on a search) go before waiting indexing passes."""
        check_pixels(pixels, self.input_size)
        outputs = []
        start = 0
        while start < len(pixels):
            with self._lock.hold(urgent):
                # A search waiting behind an index batch waits for a quarter batch, not a whole one.
                size = self.batch_size // 4 if not urgent and self._lock.urgent_waiting else self.batch_size
                batch = np.ascontiguousarray(pixels[start : start + max(1, size)], dtype=np.uint8)
                outputs.append(unit_vectors(self._forward(batch).numpy()))
            start += len(batch)
        if not outputs:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        return np.concatenate(outputs)


def check_pixels(pixels: np.ndarray, size: int) -> None:
    if pixels.ndim != 4 or pixels.shape[1:] != (size, size, 3):
        raise ValueError(f"expected (N, {size}, {size}, 3) pixels, got {pixels.shape}")


class PassLock:
    """One forward pass at a time; urgent waiters first, but never more than
    `urgent_run` urgent passes in a row while a normal one waits, so that a
    steady stream of searches slows an index run down without stopping it."""

    def __init__(self, urgent_run: int = 2) -> None:
        self._state = threading.Condition()
        self._held = False
        self._urgent_waiting = 0
        self._urgent_in_a_row = 0
        self._urgent_run = urgent_run
        self._normal_waiting = 0

    @contextmanager
    def hold(self, urgent: bool) -> Iterator[None]:
        with self._state:
            if urgent:
                self._urgent_waiting += 1
            else:
                self._normal_waiting += 1
            try:
                while not self._may_go(urgent):
                    self._state.wait()
            finally:
                if urgent:
                    self._urgent_waiting -= 1
                else:
                    self._normal_waiting -= 1
            self._held = True
            self._urgent_in_a_row = self._urgent_in_a_row + 1 if urgent else 0
        try:
            yield
        finally:
            with self._state:
                self._held = False
                self._state.notify_all()

    @property
    def urgent_waiting(self) -> int:
        return self._urgent_waiting

    def _may_go(self, urgent: bool) -> bool:
        if self._held:
            return False
        starving = self._normal_waiting > 0 and self._urgent_in_a_row >= self._urgent_run
        if urgent:
            return not starving
        return self._urgent_waiting == 0 or starving


def untrained_layers(model: object) -> list[str]:
    """Batch-norm layers whose statistics are still Keras' initial values (mean 0,
    variance 1): weights that a file did not provide. Keras may skip mismatched
    layers with a warning; this turns that into a refusal."""
    keras = runtime.keras()

    names = []
    for layer in model.layers:  # type: ignore[attr-defined]
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, variance = (np.asarray(v) for v in (layer.moving_mean, layer.moving_variance))
            if not mean.any() and np.all(variance == 1.0):
                names.append(layer.name)
    return names


def prefetch_map(
    function: Callable[[T], R], items: Iterable[T], threads: int, ahead: int
) -> Iterator[R]:
    """`map(function, items)` in a thread pool, in order, at most `ahead` items in flight.

    This is what hides decoding behind inference: while the model runs a batch,
    the pool is already decoding the next ones, and memory stays bounded.
    """
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
        pending = []
        iterator = iter(items)
        for item in iterator:
            pending.append(pool.submit(function, item))
            if len(pending) >= ahead:
                break
        for item in iterator:
            yield pending.pop(0).result()
            pending.append(pool.submit(function, item))
        for future in pending:
            yield future.result()
