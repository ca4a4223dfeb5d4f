"""What a collection records of the encoder that made its vectors, and back: the settings
that make that encoder again (what an EncoderMismatch tells a user to set)."""

from __future__ import annotations

from collections.abc import Sequence

from imgsearch.decode import INPUT_SIZE

SIZES = "sizes="


def encoder_name(pooling: str, precision: str, sizes: tuple[int, ...] = (INPUT_SIZE,)) -> str:
    """`resnet50/gem/dynamic`, and `/sizes=158+224+317` after it when images are described
    at several input sizes (`SCALES`)."""
    name = f"resnet50/{pooling}/{precision}"
    return name if sizes == (INPUT_SIZE,) else f"{name}/{SIZES}{'+'.join(str(size) for size in sizes)}"


def scales_of(sizes: Sequence[int]) -> str:
    """The SCALES setting that gives `sizes`."""
    return ",".join(f"{size / INPUT_SIZE:.4g}" for size in sizes)


def settings_of(name: str, scales: bool = True) -> str:
    """The settings that make the encoder called `name`: `resnet50/gem/dynamic/sizes=158+224+317`
    -> `PRECISION=dynamic POOLING=gem SCALES=0.7054,1,1.415`; SCALES left out when `scales` is
    False and `name` has one size (where SCALES plays no part, it would only be noise)."""
    parts = name.split("/")
    sizes = parts[3].removeprefix(SIZES).split("+") if len(parts) == 4 and parts[3].startswith(SIZES) else []
    if len(parts) != 3 + bool(sizes) or not all(size.isdigit() for size in sizes):
        return "the settings that made it"
    setting = f"PRECISION={parts[2]} POOLING={parts[1]}"
    if sizes:
        return f"{setting} SCALES={scales_of([int(size) for size in sizes])}"
    return f"{setting} SCALES=1" if scales else setting
