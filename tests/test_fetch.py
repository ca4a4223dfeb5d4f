"""Pinned packages from the registries: fetched for real (a 4-file npm package), checked by sha256."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from imgsearch.errors import Unavailable
from imgsearch.fetch import _extract, npm_pack, sha256_file

SMALL_PACKAGE = "is-number@7.0.0"
SMALL_SHA256 = "7b75c1057198cf97696909a9bee176c9c5e9bcb5b03bf3ecef2f484defadd51e"


class FetchFailed(Unavailable):
    pass


def test_npm_pack_unpacks_a_package_whose_sha256_matches(tmp_path: Path) -> None:
    package = npm_pack(SMALL_PACKAGE, SMALL_SHA256, tmp_path, FetchFailed)
    assert sorted(path.name for path in package.iterdir()) == ["LICENSE", "README.md", "index.js", "package.json"]
    assert sha256_file(tmp_path / "is-number-7.0.0.tgz") == SMALL_SHA256


def test_npm_pack_refuses_a_package_whose_sha256_differs(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match=f"is-number-7.0.0.tgz has sha256 {SMALL_SHA256}, expected 0000"):
        npm_pack(SMALL_PACKAGE, "0000", tmp_path, FetchFailed)
    assert not (tmp_path / "package").exists()  # nothing read from it


def test_npm_pack_of_a_version_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="npm pack is-number@0.0.999 failed"):
        npm_pack("is-number@0.0.999", SMALL_SHA256, tmp_path, FetchFailed)


def test_python_without_extraction_filters_unpacks_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian 12's python3 (3.11.2), which a fresh shell's setup.sh uses, has no `filter=`."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # Debian 12's 3.11.2 has none to remove
    package = npm_pack(SMALL_PACKAGE, SMALL_SHA256, tmp_path, FetchFailed)
    assert sorted(path.name for path in package.iterdir()) == ["LICENSE", "README.md", "index.js", "package.json"]


@pytest.mark.parametrize("name", ["../outside.txt", "/tmp/absolute.txt", "package/link"])
def test_python_without_extraction_filters_refuses_what_leaves_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
) -> None:
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # Debian 12's 3.11.2 has none to remove
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        member = tarfile.TarInfo(name)
        if name.endswith("link"):
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(member, io.BytesIO(b""))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive, pytest.raises(FetchFailed, match="refusing to unpack"):
        _extract(archive, tmp_path / "work", FetchFailed)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "work").exists()
