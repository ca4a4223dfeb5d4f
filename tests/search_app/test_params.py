"""Each parameter parses what it documents: its bounds and patterns, read from the
schema it gives /openapi.json, decide what it accepts."""

from __future__ import annotations

import re

import pytest

from imgsearch.settings import TOP_K_MAX, TOP_K_MIN
from search_app import params
from search_app.recent_runs import RUNS_LIMIT
from search_app.errors import ApiError
from search_app.openapi import document

INTEGERS = [params.TOP_K, params.SEED_TOP_K, params.THUMBNAIL_SIZE]


@pytest.mark.parametrize("parameter", INTEGERS, ids=lambda p: p.name)
def test_an_integer_accepts_exactly_its_documented_range(parameter: params.Integer) -> None:
    bounds = parameter.schema()["anyOf"][0]
    low, high = bounds["minimum"], bounds["maximum"]
    for value in (low, high, (low + high) // 2):
        assert parameter.parse({parameter.name: str(value)}, default=low) == value
    for value in (low - 1, high + 1):
        with pytest.raises(ApiError) as refused:
            parameter.parse({parameter.name: str(value)}, default=low)
        assert refused.value.status == 422 and parameter.name in refused.value.detail
    assert parameter.parse({parameter.name: ""}, default=low + 1) == low + 1  # empty: not given
    for text in ("+5", " 5", "5.0", "1_0", "٣", "five"):
        with pytest.raises(ApiError):
            parameter.parse({parameter.name: text}, default=low)


def test_top_k_bounds_are_the_settings_bounds() -> None:
    assert params.TOP_K.schema()["anyOf"][0] == {"type": "integer", "minimum": TOP_K_MIN, "maximum": TOP_K_MAX}


@pytest.mark.parametrize("name", ["a", "_x", "A" * 255, "voc_2012"])
def test_a_collection_name_matching_the_documented_pattern_is_accepted(name: str) -> None:
    assert re.match(params.COLLECTION.schema()["pattern"], name)
    assert re.match(params.COLLECTION_IN_PATH.parameter()["schema"]["pattern"], name)
    assert params.COLLECTION.parse({"collection": name}, "default") == name
    assert params.COLLECTION_IN_PATH.parse(name) == name


@pytest.mark.parametrize("name", ["1a", "a-b", "A" * 256, "é", "a b"])
def test_a_collection_name_outside_the_documented_pattern_is_refused(name: str) -> None:
    assert not re.match(params.COLLECTION.schema()["pattern"], name)
    with pytest.raises(Exception) as refused:
        params.COLLECTION.parse({"collection": name}, "default")
    assert getattr(refused.value, "status", None) == 422


def test_a_label_is_refused_exactly_where_its_schema_says() -> None:
    schema = params.LABEL.schema()
    longest = "x" * schema["maxLength"]
    assert params.LABEL.parse({"label": longest}) == longest
    for bad in (longest + "x", "tab\there"):
        assert len(bad) > schema["maxLength"] or not re.match(schema["pattern"], bad)
        with pytest.raises(ApiError):
            params.LABEL.parse({"label": bad})


def test_an_image_id_is_found_only_in_its_documented_form() -> None:
    pattern = params.IMAGE_ID.parameter()["schema"]["pattern"]
    largest = 2**53 - 1
    assert re.match(pattern, str(largest)) and params.IMAGE_ID.parse(str(largest)) == largest
    for raw in ("-1", "1" * 17, "¹", str(2**53)):
        with pytest.raises(ApiError) as refused:
            params.IMAGE_ID.parse(raw)
        assert refused.value.status == 404


def test_the_document_takes_every_query_parameter_from_its_parser() -> None:
    """No schema of a parameter is written by hand in the document: each is one a parser gives."""
    given = [p.query() for p in (params.TOP_K, params.COLLECTION, params.LABEL, params.SEED_TABLE,
                                 params.THUMBNAIL_SIZE, params.WAIT, params.MIN_SCORE,
                                 params.DUPLICATES_MIN_SCORE, params.INCLUDE_VECTOR, params.NEGATIVE_WEIGHT,
                                 params.POSITIVE, params.NEGATIVE, params.PAGE_LIMIT, params.PAGE_AFTER,
                                 params.FOLDER, params.EXPAND, RUNS_LIMIT)]
    given += [params.IMAGE_ID.parameter(), params.COLLECTION_IN_PATH.parameter()]
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if (path, parameter["name"]) in {("/data", "image_path"), ("/api/index/{run_id}", "run_id"),
                                                 ("/api/resolutions/{token}/undo", "token")}:
                    continue  # any text: looked up, never parsed
                assert parameter in given, (method, path, parameter["name"])


def test_a_page_cursor_is_accepted_exactly_in_its_documented_form() -> None:
    pattern = params.PAGE_AFTER.query()["schema"]["pattern"]
    for text in ("", "0-0", "1764000000000000-4656563148385854", "9" * 17 + "-" + "9" * 18):
        assert re.match(pattern, text)
        params.PAGE_AFTER.parse({"after": text})
    for text in ("1", "-1", "1-", "1--2", "a-1", "1-1 ", "9" * 18 + "-1", "1-" + "9" * 19, "１-1"):
        assert not re.match(pattern, text), text
        with pytest.raises(ApiError):
            params.PAGE_AFTER.parse({"after": text})


def test_min_score_accepts_exactly_its_documented_pattern() -> None:
    pattern = params.MIN_SCORE.schema()["pattern"]
    for text, value in (("-1", -1.0), ("1", 1.0), ("1.000", 1.0), ("0.85", 0.85), (".5", 0.5), ("-0", 0.0),
                        ("", None)):
        assert re.match(pattern, text) and params.MIN_SCORE.parse({"min_score": text}) == value
    for text in ("1.0001", "-1.5", "2", "nan", "inf", "-inf", "0,5", "1_0", " 1", "5e-1", "+", ".", "٠.5"):
        assert not re.match(pattern, text), text
        with pytest.raises(ApiError) as refused:
            params.MIN_SCORE.parse({"min_score": text})
        assert refused.value.status == 422


@pytest.mark.parametrize("parameter", INTEGERS, ids=lambda p: p.name)
def test_an_integer_form_field_pattern_is_exactly_its_range(parameter: params.Integer) -> None:
    pattern = re.compile(parameter.form_schema()["pattern"])
    for value in range(parameter.high + 50):
        assert bool(pattern.match(str(value))) == (parameter.low <= value <= parameter.high), value
    assert pattern.match("") and pattern.match(f"00{parameter.high}") and not pattern.match("+5")


@pytest.mark.parametrize("parameter", [params.MIN_SCORE, params.DUPLICATES_MIN_SCORE, params.NEGATIVE_WEIGHT],
                         ids=lambda p: p.description[:20])
def test_a_score_pattern_spells_out_exactly_its_bounds(parameter: params.Score) -> None:
    from imgsearch.duplicates import LOWEST_MIN_SCORE
    from imgsearch.searching import MIN_SCORE_HIGH, MIN_SCORE_LOW

    assert (parameter.low, parameter.high) in {(MIN_SCORE_LOW, MIN_SCORE_HIGH), (LOWEST_MIN_SCORE, 1.0), (0.0, 1.0)}
    pattern = re.compile(parameter.schema()["pattern"])
    for hundredths in range(-150, 151):
        for text in (f"{hundredths / 100:.2f}", f"{hundredths / 100:g}"):
            inside = parameter.low <= float(text) <= parameter.high
            assert bool(pattern.match(text)) == inside, text
            if inside:
                assert parameter.parse({parameter.name: text}) == float(text)
