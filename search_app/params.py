"""Parsing of client-supplied values: each failure is a 422 naming the parameter."""

from __future__ import annotations

from collections.abc import Mapping

from imgsearch.settings import check_collection_name
from imgsearch.vectors import ID_BITS, LABEL_LENGTH
from search_app.errors import ApiError


def integer(values: Mapping[str, object], name: str, default: int, low: int, high: int) -> int:
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    text = str(raw)
    # int() would also take " 5", "+5", "1_000" and non-ASCII digits; the documented form is digits.
    if not (text.isascii() and text.isdigit()):
        raise ApiError(422, f"{name} must be an integer from {low} to {high}, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be from {low} to {high}, got {value}")
    return value


TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def boolean(values: Mapping[str, object], name: str, default: bool) -> bool:
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    text = str(raw).strip().lower()
    if text not in TRUE + FALSE:
        raise ApiError(422, f"{name} must be true or false, got {str(raw)[:40]!r}")
    return text in TRUE


def collection(values: Mapping[str, object], default: str, name: str = "collection") -> str:
    raw = values.get(name)
    return collection_name(str(raw) if raw not in (None, "") else default)


def collection_name(value: str) -> str:
    return check_collection_name(value)  # InvalidName answers 422 by its kind


def label(values: Mapping[str, object]) -> str | None:
    raw = values.get("label")
    if raw in (None, ""):
        return None
    text = str(raw)
    if len(text) > LABEL_LENGTH or any(ord(character) < 0x20 for character in text):
        raise ApiError(422, f"label must be at most {LABEL_LENGTH} characters with no control characters")
    return text


def image_id(raw: str) -> int:
    """Path parameter {id}: anything but a known id's form is simply not found."""
    # isdigit() alone admits "¹" and "٣", which int() then refuses or reads: ASCII only.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) >= 2**ID_BITS:
        raise ApiError(404, f"no image with id {raw[:40]!r}")
    return int(raw)
