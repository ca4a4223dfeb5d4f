from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.discover import DiscoveryError, discover
from imgsearch.samples import make_voc_sample
from imgsearch.settings import get_settings


def tiny(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, "PNG" if path.suffix.lower() == ".png" else "JPEG")
    return path


def test_plain_folders_label_by_parent_and_accept_any_letter_case(tmp_path: Path) -> None:
    tiny(tmp_path / "cats" / "a.JPG")
    tiny(tmp_path / "cats" / "b.jpeg")
    tiny(tmp_path / "dogs" / "deep" / "c.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    found = discover(tmp_path)
    labels = {Path(image.path).name: image.labels for image in found.images}
    assert labels == {"a.JPG": ("cats",), "b.jpeg": ("cats",), "c.PNG": ("deep",)}
    assert found.ignored == 1 and not found.voc and not found.problems
    assert all(os.path.isabs(image.path) for image in found.images)


def test_voc_tree_labels_from_annotations(tmp_path: Path, photos: object) -> None:
    make_voc_sample(tmp_path, 6, get_settings().cache_dir,
                    class_names=[f"name{i}" for i in range(1000)])
    annotation = tmp_path / "VOCdevkit/VOC2012/Annotations/2012_000002.xml"
    # An image with two classes, as VOC has.
    annotation.write_text(
        "<annotation><object><name>person</name></object><object><name>dog</name></object>"
        "<object><name>person</name></object></annotation>"
    )
    found = discover(tmp_path)
    assert found.voc and len(found.images) == 6
    by_name = {Path(image.path).stem: image.labels for image in found.images}
    assert by_name["2012_000002"] == ("dog", "person")
    assert by_name["2012_000001"][0].startswith("name")


def test_symlink_loop_and_broken_links_are_reported_not_fatal(tmp_path: Path) -> None:
    tiny(tmp_path / "a" / "one.jpg")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "a" / "broken.jpg")
    os.symlink(tmp_path / "a" / "one.jpg", tmp_path / "a" / "alias.jpg")
    found = discover(tmp_path)
    assert [Path(image.path).name for image in found.images] == ["one.jpg"], "alias resolves to one file"
    reasons = " ".join(problem.reason for problem in found.problems)
    assert "symlink loop" in reasons and "cannot read file" in reasons


def test_a_single_file_and_bad_paths(tmp_path: Path) -> None:
    image = tiny(tmp_path / "x" / "one.webp.jpg")
    assert [found.path for found in discover(image).images] == [str(image)]
    with pytest.raises(DiscoveryError, match="no such file"):
        discover(tmp_path / "nope")
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(DiscoveryError, match="not an image file"):
        discover(tmp_path / "readme.md")


def test_unreadable_folder_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    locked = tmp_path / "locked"
    tiny(locked / "a.jpg")
    locked.chmod(0)
    try:
        found = discover(tmp_path)
        assert any("cannot list folder" in problem.reason for problem in found.problems)
    finally:
        locked.chmod(0o755)
