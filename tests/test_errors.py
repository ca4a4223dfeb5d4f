"""One error model: every error class of the project is an ImgsearchError whose kind says
its HTTP status; the CLI and the web app map kinds, never message text."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import benchmarks
import cli
import flows
import imgsearch
import search_app
import tasks
from imgsearch.catalog import CatalogError
from imgsearch.decode import CorruptImage, EmptyImage, ImageTooLarge, NotAnImage
from imgsearch.discover import DiscoveryError
from imgsearch.errors import ImgsearchError, InvalidName, Unavailable
from imgsearch.settings import SettingsError, check_collection_name
from imgsearch.vectors import EncoderMismatch, VectorStoreError
from imgsearch.weights import WeightsError
from search_app.errors import ApiError

# The HTTP layer's own error carries its status per instance; the benchmark's tools are no product.
OUTSIDE_THE_MODEL = {ApiError}


def project_error_classes() -> list[type[BaseException]]:
    found = []
    for package in (imgsearch, tasks, flows, search_app, cli, benchmarks):
        for module_info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if module_info.name.endswith(("locustfile", "__main__")):
                continue
            module = importlib.import_module(module_info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == module.__name__:
                    found.append(value)
    return found


def test_every_project_error_is_an_imgsearch_error() -> None:
    classes = project_error_classes()
    assert len(classes) >= 15
    strays = [f"{c.__module__}.{c.__name__}" for c in classes
              if not issubclass(c, ImgsearchError) and c not in OUTSIDE_THE_MODEL]
    assert not strays, f"errors outside the model (the CLI would show a traceback): {strays}"


@pytest.mark.parametrize(("kind", "status"), [
    (EmptyImage, 400), (ImageTooLarge, 413), (NotAnImage, 415), (CorruptImage, 422),
    (InvalidName, 422), (DiscoveryError, 422), (SettingsError, 422),
    (EncoderMismatch, 409), (VectorStoreError, 503), (CatalogError, 503), (WeightsError, 503),
])
def test_each_kind_carries_its_status(kind: type[ImgsearchError], status: int) -> None:
    assert kind.status == status


def test_backends_name_themselves_in_a_503() -> None:
    assert {VectorStoreError.backend, CatalogError.backend, WeightsError.backend} == {
        "Milvus", "the database", "the model"}
    assert all(issubclass(kind, Unavailable) for kind in (VectorStoreError, CatalogError, WeightsError))


def test_a_bad_collection_name_is_bad_input_and_still_a_value_error() -> None:
    with pytest.raises(InvalidName, match="invalid collection name") as caught:
        check_collection_name("no spaces please")
    assert isinstance(caught.value, ValueError)  # callers that caught ValueError still do
