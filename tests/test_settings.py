from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.settings import SettingsError, load_settings

SEED_AND_MODERN = ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MILVUS_PORT", "MYSQL_HOST", "MYSQL_PORT",
                   "MYSQL_USER", "MYSQL_PWD", "MYSQL_DB", "DEFAULT_TABLE", "TOP_K", "DATA_DIR")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SEED_AND_MODERN:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_embedded_defaults() -> None:
    settings = load_settings()
    assert settings.milvus_uri == "data/milvus.db" and settings.milvus_is_lite
    assert settings.database_url == "sqlite:///data/catalog.db"
    assert (settings.default_table, settings.vector_dimension, settings.top_k) == ("milvus_img_search", 2048, 10)


def test_seed_variables_build_the_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_HOST", "milvus.internal")
    monkeypatch.setenv("MILVUS_PORT", "19531")
    monkeypatch.setenv("MYSQL_HOST", "db.internal")
    monkeypatch.setenv("MYSQL_USER", "search")
    monkeypatch.setenv("MYSQL_PWD", "p@ss:word/1")
    monkeypatch.setenv("MYSQL_DB", "images")
    monkeypatch.setenv("DEFAULT_TABLE", "voc2012")
    monkeypatch.setenv("TOP_K", "25")
    settings = load_settings()
    assert settings.milvus_uri == "http://milvus.internal:19531" and not settings.milvus_is_lite
    assert settings.database_url == "mysql+pymysql://search:p%40ss%3Aword%2F1@db.internal:3306/images?charset=utf8mb4"
    assert (settings.default_table, settings.top_k) == ("voc2012", 25)


def test_modern_settings_win_over_seed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_HOST", "ignored")
    monkeypatch.setenv("MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("MYSQL_HOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    settings = load_settings()
    assert (settings.milvus_uri, settings.database_url) == ("http://milvus:19530", "sqlite:///elsewhere.db")


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOP_K=7\nDEFAULT_TABLE=from_dotenv\n")
    settings = load_settings()
    assert (settings.top_k, settings.default_table) == (7, "from_dotenv")


@pytest.mark.parametrize(("value", "scales", "sizes"), [
    ("1", (1.0,), (224,)), ("", (1.0,), (224,)), ("0.707,1,1.414", (0.707, 1.0, 1.414), (158, 224, 317)),
    (" 1.414 , 0.707 ", (1.414, 0.707), (158, 317)), ("0.7054,1,1.415", (0.7054, 1.0, 1.415), (158, 224, 317))])
def test_scales_are_factors_of_224_and_name_their_sizes(monkeypatch: pytest.MonkeyPatch, value: str,
                                                        scales: tuple[float, ...], sizes: tuple[int, ...]) -> None:
    from imgsearch.encoder_names import settings_of
    from imgsearch.models import name_of
    from imgsearch.multiscale import sizes_of

    monkeypatch.setenv("SCALES", value)
    settings = load_settings()
    assert settings.scales == scales and sizes_of(settings.scales) == sizes
    name = name_of(settings)
    assert name == "resnet50/gem/dynamic" + ("" if sizes == (224,) else "/sizes=" + "+".join(map(str, sizes)))
    # What a mismatch tells a user to set gives the same encoder back.
    told = dict(part.split("=") for part in settings_of(name).split())
    monkeypatch.setenv("SCALES", told["SCALES"])
    assert name_of(load_settings()) == name


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [("TOP_K", "0", "TOP_K"), ("TOP_K", "many", "TOP_K"), ("VECTOR_DIMENSION", "512", "VECTOR_DIMENSION"),
     ("DEFAULT_TABLE", "bad-name", "DEFAULT_TABLE"), ("MILVUS_URI", "milvus.txt", "MILVUS_URI"),
     ("DATABASE_URL", "oracle://x", "DATABASE_URL"), ("MILVUS_PORT", "99999", "MILVUS_PORT"),
     ("POOLING", "median", "POOLING"), ("QUERY_EXPANSION", "-1", "QUERY_EXPANSION"),
     ("QUERY_EXPANSION_ALPHA", "much", "QUERY_EXPANSION_ALPHA"), ("SCALES", "small,large", "SCALES"),
     ("SCALES", "0.1,1", "SCALES"), ("SCALES", "1,1", "SCALES"), ("SCALES", "0.5,0.7,1,1.4,2", "SCALES")],
)
def test_a_wrong_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                               named: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and named in message, message
