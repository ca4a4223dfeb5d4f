"""One settings object, read from the environment and `.env`.

The seed's variables (`MILVUS_HOST`, `MYSQL_HOST`, ...) keep working: when they
are set and the modern `MILVUS_URI` / `DATABASE_URL` are not, they build them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import quote_plus

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from imgsearch.errors import BadInput, InvalidName, UsageError

COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


QUERY_EXPANSION_MAX = 50  # answers a query may be expanded by: settings, `expand=`, the CLI
TOP_K_MIN, TOP_K_MAX = 1, 100  # results per query: settings, every route, the OpenAPI document, the CLI
# Input sizes an image may be described at, as factors of the network's 224 pixels (SCALES and
# `eval --scales`): below 0.3 ResNet50's last map is 2x2, above 3 one pass costs 9x a 224 pass.
SCALE_LOW, SCALE_HIGH, SCALES_MAX = 0.3, 3.0, 4


def is_lite_uri(uri: str) -> bool:
    """A Milvus address that is a local file (Milvus Lite, in this process), not a server."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))

# What PRECISION can be, fp32 first (the one the others are compared with): fp32 and bf16 run
# on Keras; dynamic and int8 are quantised models on LiteRT (imgsearch/litert.py).
Precision = Literal["fp32", "bf16", "dynamic", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


class SettingsError(BadInput):
    """A setting is wrong; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    milvus_uri: str = Field("", description=(
        "a Milvus Lite file (`*.db`, relative or absolute), or `http://host:19530` for a Milvus server or cluster "
        "(pymilvus reads a variable of this name when imported and accepts only `http(s)://`; imgsearch imports it "
        "with that variable, and its `.env` loading, turned off, so a Lite path never reaches it)"),
        json_schema_extra={"shown_default": "data/milvus.db"})
    milvus_token: str = Field("", description="`user:password` or an API key for a secured Milvus")
    milvus_index: Literal["", "FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW"] = Field("", description=(
        "index of new collections: `FLAT`, `IVF_FLAT`, `IVF_SQ8` (nlist 1024, searched with nprobe 32; a third of "
        "HNSW's memory) or `HNSW`; empty: FLAT on Milvus Lite, HNSW on a server, rebuilt as IVF_SQ8 when the "
        "collection passes 250,000 images ([Scaling out](scaling.md)); a collection given an index here keeps it"))
    database_url: str = Field("", description=(
        "any SQLAlchemy URL: `mysql+pymysql://user:pw@host:3306/db` for MySQL/MariaDB"),
        json_schema_extra={"shown_default": "sqlite:///data/catalog.db"})
    default_table: str = Field("milvus_img_search", description="the collection used when `--collection` is not given")
    vector_dimension: int = Field(2048, description="ResNet50's feature size (the only valid value)")
    top_k: int = Field(10, ge=TOP_K_MIN, le=TOP_K_MAX, description="results per search when not given (1..100)")
    pooling: Literal["avg", "max", "gem"] = Field("gem", description=(
        "global pooling of the last feature map: `gem` (generalised mean, p=3: measured best), `avg` or `max` (the "
        "seed's); see [the model](model.md). A collection remembers the pooling its vectors were made with"))
    precision: Precision = Field("dynamic", description=(
        "`dynamic` (int8 weights) or `int8` (int8 weights and activations) on LiteRT with XNNPACK; `fp32` or `bf16` "
        "on Keras; see [the model](model.md). A collection remembers the precision its vectors were made with"))
    query_expansion: int = Field(0, ge=0, le=QUERY_EXPANSION_MAX, description=(
        "αQE: search again with the query plus its first N answers' vectors (weighted by their cosine to the power "
        "`QUERY_EXPANSION_ALPHA`); 0: off. Measured: +0.015-0.019 mAP@10 at N=2 on Fashion-MNIST, -0.012 on the "
        "kinds set, and two searches a query ([the model](model.md)); `expand=` on a request overrides it"))
    query_expansion_alpha: float = Field(1.0, ge=0, le=10, description=(
        "αQE's α: 0 weighs the N answers alike (average query expansion), higher trusts the nearest most"))
    scales_raw: str = Field("1", validation_alias="SCALES", description=(
        "the input sizes each image is described at, as factors of 224 pixels separated by commas: `1` (one pass); "
        "`0.707,1,1.414` describes it at 158, 224 and 317 pixels, GeM-pooled and summed (multi-scale: +0.004 to "
        "+0.015 mAP@10 on every labelled set measured, 3.5x the model's time at indexing and at every search; "
        "[the model](model.md)). A collection remembers the sizes its vectors were made at"))
    batch_size: int = Field(32, ge=1, le=512, description=(
        "images per forward pass on Keras (LiteRT runs batches of 8, its fastest here)"))
    chunk_size: int = Field(256, ge=1, le=100_000, description="images per Prefect task")
    decode_threads: int = Field(2, ge=1, le=64, description="Pillow decoding threads running ahead of the model")
    data_dir: Path = Field(Path("data"), description="where the embedded defaults live")
    cache_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "imgsearch", description="the weights and converted models", json_schema_extra={
            "shown_default": "$XDG_CACHE_HOME/imgsearch or ~/.cache/imgsearch"})
    weights: Path | None = Field(None, validation_alias="IMGSEARCH_WEIGHTS", description=(
        "a local ResNet50 weights file to use instead of the cache"))
    api_key: str = Field("", description=(
        "when set, HTTP routes that change something need it (`Authorization: Bearer KEY` or `X-API-Key: KEY`)"))
    max_upload_mb: float = Field(20.0, gt=0, le=1024, description="the largest request body the service accepts")
    thumbnail_cache_mb: float = Field(512.0, gt=0, description="the bound of the thumbnail cache, DATA_DIR/thumbnails")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", validation_alias="IMGSEARCH_LOG_LEVEL",
        description=("imgsearch's own log level; `debug` (or `imgsearch --verbose`) also shows TensorFlow's "
                     "start-up lines, in every process started from there"))
    index_roots_raw: str = Field("", validation_alias="INDEX_ROOTS", description=(
        "colon-separated folders that `POST /api/index` may index (and duplicates may be moved into); empty: any"))

    # The seed's settings (Milvus bootcamp `config.py`).
    milvus_host: str | None = Field(None, description=(
        "the seed's: when set (and `MILVUS_URI` is not) it builds `http://MILVUS_HOST:MILVUS_PORT`"))
    milvus_port: int | None = Field(None, ge=1, le=65535, description="the seed's; 19530 when not set")
    mysql_host: str | None = Field(None, description=(
        "the seed's: when set (and `DATABASE_URL` is not), the `MYSQL_*` settings build a `mysql+pymysql://` URL"))
    mysql_port: int = Field(3306, ge=1, le=65535, description="the seed's")
    mysql_user: str = Field("root", description="the seed's")
    mysql_pwd: str = Field("", description="the seed's")
    mysql_db: str = Field("default", description="the seed's")

    @field_validator("default_table")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        return check_collection_name(value)

    @field_validator("scales_raw")
    @classmethod
    def _scales(cls, value: str) -> str:
        return ",".join(f"{scale:g}" for scale in parse_scales(value))

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("vector_dimension")
    @classmethod
    def _dimension(cls, value: int) -> int:
        if value != 2048:
            raise ValueError("ResNet50 features are 2048-d; only 2048 is supported")
        return value

    @model_validator(mode="after")
    def _derive_urls(self) -> Settings:
        if not self.milvus_uri:
            if self.milvus_host:
                self.milvus_uri = f"http://{self.milvus_host}:{self.milvus_port or 19530}"
            else:
                self.milvus_uri = str(self.data_dir / "milvus.db")
        if not self.database_url:
            if self.mysql_host:
                self.database_url = (
                    f"mysql+pymysql://{quote_plus(self.mysql_user)}:{quote_plus(self.mysql_pwd)}"
                    f"@{self.mysql_host}:{self.mysql_port}/{quote_plus(self.mysql_db)}"
                    "?charset=utf8mb4"
                )
            else:
                self.database_url = f"sqlite:///{self.data_dir / 'catalog.db'}"
        if is_lite_uri(self.milvus_uri) and not self.milvus_uri.endswith(".db"):
            raise ValueError("MILVUS_URI: a Milvus Lite path must end in .db, or use http://")
        if not self.database_url.startswith(("sqlite", "mysql", "mariadb", "postgresql")):
            raise ValueError("DATABASE_URL: expected sqlite:///..., mysql+pymysql://... or postgresql://...")
        return self

    @property
    def index_roots(self) -> list[str]:
        return [root for root in self.index_roots_raw.split(os.pathsep) if root]

    @property
    def scales(self) -> tuple[float, ...]:
        return parse_scales(self.scales_raw)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def thumbnail_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def milvus_is_lite(self) -> bool:
        return is_lite_uri(self.milvus_uri)

    def require_milvus_server(self, feature: str) -> None:
        """Several processes cannot share a Milvus Lite file: refuse `feature` on one."""
        if self.milvus_is_lite:
            raise UsageError(f"{feature} needs a Milvus server: Milvus Lite opens its file in one process "
                             "only (run `milvus-lite server` or Milvus, and set MILVUS_URI=http://...)")


def check_collection_name(name: str) -> str:
    """Milvus' own rule for collection names; also keeps names safe in SQL and URLs."""
    if not COLLECTION_NAME.match(name):
        raise InvalidName(
            f"invalid collection name {name[:80]!r}: use letters, digits and _, "
            "starting with a letter or _, at most 255 characters"
        )
    return name


def parse_scales(text: str) -> tuple[float, ...]:
    """`0.707,1,1.414` -> (0.707, 1.0, 1.414): one to SCALES_MAX factors of 224, each from
    SCALE_LOW to SCALE_HIGH (ValueError otherwise, in words a user can act on); empty: 1."""
    if not text.strip():
        return (1.0,)
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError("expected numbers separated by commas, like 0.707,1,1.414") from None
    if not 1 <= len(scales) <= SCALES_MAX or not all(SCALE_LOW <= scale <= SCALE_HIGH for scale in scales):
        raise ValueError(f"one to {SCALES_MAX} factors of 224 pixels, each from {SCALE_LOW:g} to {SCALE_HIGH:g}")
    if len(set(scales)) != len(scales):
        raise ValueError("a factor given twice")
    return scales


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]).upper() or "settings"
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith(tuple(f"{n}:" for n in ("MILVUS_URI", "DATABASE_URL"))):
        return f"invalid setting {message}"
    return f"invalid setting {field}: {message} (got {first.get('input')!r})"


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation error into one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
