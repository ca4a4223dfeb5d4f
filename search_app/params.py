"""Every value a client sends, defined once: each parameter parses itself (a failure
is a 422 naming it) and describes itself to `/openapi.json`, from the same bounds
and patterns, so that what is documented and what is accepted cannot drift."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from imgsearch.browse import CURSOR, MOST_PER_PAGE
from imgsearch.discover import canonical_path, is_within
from imgsearch.duplicates import DEFAULT_MIN_SCORE, LOWEST_MIN_SCORE
from imgsearch.searching import MIN_SCORE_HIGH, MIN_SCORE_LOW, MOST_EXAMPLES
from imgsearch.searching import NEGATIVE_WEIGHT as DEFAULT_NEGATIVE_WEIGHT
from imgsearch.settings import COLLECTION_NAME, QUERY_EXPANSION_MAX, TOP_K_MAX, TOP_K_MIN, check_collection_name
from imgsearch.thumbnails import BUCKETS, LARGEST, SMALLEST
from imgsearch.vectors import ID_BITS, LABEL_LENGTH
from search_app.errors import ApiError

Values = Mapping[str, object]
Schema = dict[str, Any]


def _given(values: Values, name: str) -> str | None:
    """The value as text, None when absent or empty: an empty field means "not given"
    (the web page sends its fields even when cleared)."""
    raw = values.get(name)
    return None if raw is None or raw == "" else str(raw)


def _in_query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


@dataclass(frozen=True)
class Integer:
    """Digits of an integer in [low, high]; `default` None means a setting decides."""

    name: str
    low: int
    high: int
    description: str
    default: int | None = None

    def parse(self, values: Values, default: int | None = None) -> int:
        text = _given(values, self.name)
        if text is None:
            chosen = self.default if default is None else default
            assert chosen is not None, f"{self.name} has no default"
            return chosen
        # int() would also take " 5", "+5", "1_000" and non-ASCII digits; the documented form is digits.
        if not (text.isascii() and text.isdigit()):
            raise ApiError(422, f"{self.name} must be an integer from {self.low} to {self.high}, "
                                f"got {text[:40]!r}")
        value = int(text)
        if not self.low <= value <= self.high:
            raise ApiError(422, f"{self.name} must be from {self.low} to {self.high}, got {value}")
        return value

    def schema(self) -> Schema:
        # In a query or a form an empty value means "not given", so "" is valid too.
        return {"anyOf": [{"type": "integer", "minimum": self.low, "maximum": self.high},
                          {"type": "string", "maxLength": 0}], "description": self.description}

    def form_schema(self) -> Schema:
        """As a multipart field, where every value is text: the digits of low..high, or empty."""
        return {"type": "string", "pattern": f"^(0*({integer_range_pattern(self.low, self.high)}))?$",
                "description": self.description}

    def query(self) -> Schema:
        return _in_query(self.name, self.schema(), self.description)


def integer_range_pattern(low: int, high: int) -> str:
    """A regular expression alternation matching the decimal integers low..high, without
    sign or leading zeros: 1..100 gives `[1-9]|[1-9][0-9]|100`."""
    assert 0 <= low <= high
    stops = {high}
    nines = 1  # low with its last digits turned to 9: 16 -> 19, 99, 999 ...
    while low <= (stop := int(str(low)[:-nines] + "9" * nines)) < high:
        stops.add(stop)
        nines += 1
    zeros = 1  # high + 1 with its last digits turned to 0, minus 1: 1024 -> 1019, 999 ...
    while low < (stop := (high + 1) // 10**zeros * 10**zeros - 1) <= high:
        stops.add(stop)
        zeros += 1
    alternatives, start = [], low
    for stop in sorted(stops):
        first, last = str(start), str(stop)
        alternatives.append("".join(a if a == b else f"[{a}-{b}]" for a, b in zip(first, last, strict=True)))
        start = stop + 1
    return "|".join(alternatives)


@dataclass(frozen=True)
class Score:
    """A similarity threshold in [low, high], written as a decimal ("0.9", "-.5", "1"); empty or
    absent: none. One pattern for the query and the form, where every value is text; it spells
    the bounds out (a test checks it against them)."""

    name: str
    description: str
    low: float
    high: float
    pattern: str

    def parse(self, values: Values) -> float | None:
        text = _given(values, self.name)
        if text is None:
            return None
        if not re.match(self.pattern, text):
            raise ApiError(422, f"{self.name} must be a decimal number from {self.low:g} to {self.high:g}, "
                                f"got {text[:40]!r}")
        return float(text)

    def schema(self) -> Schema:
        return {"type": "string", "pattern": self.pattern, "description": self.description}

    def query(self) -> Schema:
        return _in_query(self.name, self.schema(), self.description)


@dataclass(frozen=True)
class Boolean:
    name: str
    description: str
    TRUE = ("true", "1", "yes")
    FALSE = ("false", "0", "no")

    def parse(self, values: Values, default: bool) -> bool:
        text = _given(values, self.name)
        if text is None:
            return default
        if text.strip().lower() not in self.TRUE + self.FALSE:
            raise ApiError(422, f"{self.name} must be true or false, got {text[:40]!r}")
        return text.strip().lower() in self.TRUE

    def query(self) -> Schema:
        return _in_query(self.name, {"type": "boolean"}, self.description)


@dataclass(frozen=True)
class Collection:
    """A collection's name, or empty/absent for DEFAULT_TABLE."""

    name: str
    description: str = "empty or absent: DEFAULT_TABLE"

    def parse(self, values: Values, default: str) -> str:
        return check_collection_name(_given(values, self.name) or default)  # InvalidName: 422

    def schema(self) -> Schema:
        inner = COLLECTION_NAME.pattern.removeprefix("^").removesuffix("$")
        return {"type": "string", "pattern": f"^({inner})?$", "description": self.description}

    def query(self) -> Schema:
        return _in_query(self.name, self.schema(), self.description)


@dataclass(frozen=True)
class CollectionPath:
    """`{name}` in a path: a collection's name, required."""

    name: str = "name"

    def parse(self, raw: str) -> str:
        return check_collection_name(raw)

    def parameter(self) -> Schema:
        return {"name": self.name, "in": "path", "required": True,
                "schema": {"type": "string", "pattern": COLLECTION_NAME.pattern}}


@dataclass(frozen=True)
class Label:
    name: str = "label"
    description: str = "only images with this label"
    # What Milvus' label array holds: at most LABEL_LENGTH characters, no control characters.
    PATTERN = "^[^\\u0000-\\u001f]*$"

    def parse(self, values: Values) -> str | None:
        text = _given(values, self.name)
        if text is None:
            return None
        if len(text) > LABEL_LENGTH or any(ord(character) < 0x20 for character in text):
            raise ApiError(422, f"{self.name} must be at most {LABEL_LENGTH} characters "
                                "with no control characters")
        return text

    def schema(self) -> Schema:
        return {"type": "string", "maxLength": LABEL_LENGTH, "pattern": self.PATTERN}

    def query(self) -> Schema:
        return _in_query(self.name, self.schema(), self.description)


@dataclass(frozen=True)
class Text:
    """Text of at most `longest` characters, no control characters, matching `pattern`; empty or
    absent: None."""

    name: str
    longest: int
    description: str
    pattern: str  # what the text must match; at least: no control characters

    def parse(self, values: Values) -> str | None:
        text = _given(values, self.name)
        if text is None:
            return None
        if len(text) > self.longest or any(ord(character) < 0x20 for character in text) \
                or not re.match(self.pattern, text):
            raise ApiError(422, f"{self.name} must be at most {self.longest} characters with no control characters"
                                f" matching {self.pattern}")
        return text

    def query(self) -> Schema:
        # Empty means "not given" in a query, so "" is valid too.
        return _in_query(self.name, {"type": "string", "maxLength": self.longest,
                                     "pattern": f"^({self.pattern.removeprefix('^').removesuffix('$')})?$"},
                         self.description)


@dataclass(frozen=True)
class ImageId:
    """`{id}` in a path: anything but a known id's form is simply not found (404)."""

    name: str = "id"
    DIGITS = len(str(2**ID_BITS - 1))
    PATTERN = f"^[0-9]{{1,{DIGITS}}}$"

    def parse(self, raw: str) -> int:
        # isdigit() alone admits "¹" and "٣", which int() then refuses or reads: ASCII only.
        if not (raw.isascii() and raw.isdigit()) or len(raw) > self.DIGITS or int(raw) >= 2**ID_BITS:
            raise ApiError(404, f"no image with id {raw[:40]!r}")
        return int(raw)

    def parameter(self) -> Schema:
        return {"name": self.name, "in": "path", "required": True, "description": "an image id, as returned by search",
                "schema": {"type": "string", "pattern": self.PATTERN}}


@dataclass(frozen=True)
class ImageIds:
    """Image ids repeated in the query (`?positive=1&positive=2`), at most `most` of them."""

    name: str
    most: int
    required: bool
    description: str

    def parse(self, query: QueryParams) -> list[int]:
        given = [value for value in query.getlist(self.name) if value != ""]
        if self.required and not given:
            raise ApiError(422, f"give at least one {self.name} image id")
        if len(given) > self.most:
            raise ApiError(422, f"at most {self.most} {self.name} image ids, got {len(given)}")
        for value in given:
            if not re.match(ImageId.PATTERN, value):  # the form of an id; one that is unknown is a 404
                raise ApiError(422, f"{self.name} must be image ids, got {value[:40]!r}")
        return [int(value) for value in given]

    def query(self) -> Schema:
        return {"name": self.name, "in": "query", "required": self.required, "style": "form", "explode": True,
                "description": self.description,
                "schema": {"type": "array", "minItems": 1 if self.required else 0, "maxItems": self.most,
                           "items": {"type": "string", "pattern": ImageId.PATTERN}}}


def require_within_roots(path: str, roots: list[str], name: str) -> None:
    """403 unless the canonical `path` lies at or below one of INDEX_ROOTS (when any is set)."""
    allowed = [canonical_path(root) for root in roots]
    if allowed and not any(is_within(path, root) for root in allowed):
        raise ApiError(403, f"{name} is outside INDEX_ROOTS", "forbidden")


@dataclass(frozen=True)
class ServerPath:
    """A folder or image on the server that may be indexed: inside INDEX_ROOTS when set."""

    name: str

    def parse(self, values: Values, roots: list[str]) -> str:
        raw = values.get(self.name)
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise ApiError(422, f"{self.name} must be a non-empty string without NUL: "
                                "a folder or image on the server")
        path = canonical_path(raw)
        require_within_roots(path, roots, self.name)
        if not os.path.exists(path):
            raise ApiError(404, f"no such file or folder on the server: {raw[:200]}")
        return path

    def schema(self) -> Schema:
        return {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]+$",
                "description": "a folder or image on the server, inside INDEX_ROOTS when that is set"}


TOP_K = Integer("top_k", TOP_K_MIN, TOP_K_MAX, f"{TOP_K_MIN}..{TOP_K_MAX}; empty or absent: TOP_K")
SEED_TOP_K = Integer("topk", TOP_K_MIN, TOP_K_MAX, f"{TOP_K_MIN}..{TOP_K_MAX}; empty or absent: TOP_K")
EXPAND = Integer("expand", 0, QUERY_EXPANSION_MAX,
                 f"query expansion (αQE): search again with the query plus its first N answers, 0..{QUERY_EXPANSION_MAX}; "
                 "0: off; empty or absent: QUERY_EXPANSION")
THUMBNAIL_SIZE = Integer("size", SMALLEST, LARGEST,
                         f"longer side in pixels, served from the next of {list(BUCKETS)}; empty or absent: 256",
                         default=256)
MIN_SCORE = Score("min_score",
                  "only results at least this similar (cosine, -1..1): fewer than top_k then, never padded; "
                  "empty or absent: no threshold", MIN_SCORE_LOW, MIN_SCORE_HIGH,
                  r"^([+-]?(0*\.[0-9]+|0+(\.[0-9]*)?|0*1(\.0*)?))?$")
DUPLICATES_MIN_SCORE = Score("min_score",
                             f"link images at least this similar (cosine, {LOWEST_MIN_SCORE:g}..1); empty or absent: "
                             f"{DEFAULT_MIN_SCORE:g}, which groups copies, not other photos of a scene",
                             LOWEST_MIN_SCORE, 1.0, r"^(0*\.[5-9][0-9]*|0*1(\.0*)?)?$")
WAIT = Boolean("wait", "false: answer 202 at once; default: when loaded")
POSITIVE = ImageIds("positive", MOST_EXAMPLES, True, "indexed images to look like (repeat the parameter)")
NEGATIVE = ImageIds("negative", MOST_EXAMPLES, False, "indexed images not to look like (repeat the parameter)")
NEGATIVE_WEIGHT = Score("negative_weight",
                        f"how far the negatives push the query away, 0..1; empty or absent: {DEFAULT_NEGATIVE_WEIGHT:g}",
                        0.0, 1.0, r"^(0*\.[0-9]+|0+(\.[0-9]*)?|0*1(\.0*)?)?$")
INCLUDE_VECTOR = Boolean("include_vector", "true: the record carries its stored feature vector (float32, L2-normalised)")
COLLECTION = Collection("collection")
SEED_TABLE = Collection("table_name")
SEED_BODY_TABLE = Collection("Table")
COLLECTION_IN_PATH = CollectionPath()
LABEL = Label()
PAGE_LIMIT = Integer("limit", 1, MOST_PER_PAGE, f"images on a page, 1..{MOST_PER_PAGE}; empty or absent: 60", default=60)
PAGE_AFTER = Text("after", 40, "the `next` cursor of the page before; empty or absent: the first page",
                  CURSOR.pattern)
FOLDER = Text("folder", 4096, "only images in this folder or below it (a path on the server)",
              "^[^\\u0000-\\u001f]*$")
IMAGE_ID = ImageId()
INDEX_PATH = ServerPath("path")
SEED_FILE = ServerPath("File")
