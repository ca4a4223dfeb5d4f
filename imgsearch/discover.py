"""Find the images under a path and give each its labels.

A PASCAL VOC tree (`.../JPEGImages` beside `.../Annotations/*.xml`) labels each
image with the class names of its annotated objects; elsewhere the label is the
name of the image's parent folder. Symlink loops, unreadable folders and files
are reported as problems, never raised.
"""

from __future__ import annotations

import os
import stat
from xml.etree import ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.decode import EXTENSIONS
from imgsearch.errors import BadInput


@dataclass(frozen=True)
class FoundImage:
    path: str  # canonical: absolute, symlinks resolved
    size: int
    mtime_ns: int
    labels: tuple[str, ...]
    folder: str


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str


@dataclass
class Discovery:
    root: str
    images: list[FoundImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: int = 0  # files that are not images by their name (annotations, text, ...)
    voc: bool = False
    # The paths under `root` this discovery was narrowed to (a watcher's changed files and
    # folders); empty when it covers all of `root`.
    only: tuple[str, ...] = ()


class DiscoveryError(BadInput):
    """The path itself cannot be indexed (missing, not a folder or image)."""


def canonical_path(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in EXTENSIONS


def discover(root: str | os.PathLike[str]) -> Discovery:
    """Walk `root` (a folder, a VOC tree or one image file) and list its images."""
    top = canonical_path(root)
    if not os.path.exists(top):
        raise DiscoveryError(f"no such file or folder: {root}")
    found = Discovery(root=top)
    if os.path.isfile(top):
        if not is_image_name(top):
            raise DiscoveryError(f"not an image file ({', '.join(sorted(EXTENSIONS))}): {root}")
        _add(found, top, _folder_label(top))
        return found
    if not os.path.isdir(top):
        raise DiscoveryError(f"not a file or folder: {root}")

    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
        except OSError as error:
            found.problems.append(Problem(folder, f"cannot read folder: {error.strerror}"))
            continue
        if (info.st_dev, info.st_ino) in seen_dirs:
            found.problems.append(Problem(folder, "symlink loop or repeated folder, skipped"))
            continue
        seen_dirs.add((info.st_dev, info.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            found.problems.append(Problem(folder, f"cannot list folder: {error.strerror}"))
            continue
        annotations = _voc_annotations(folder)
        found.voc = found.voc or annotations is not None
        for entry in entries:
            if entry.is_dir(follow_symlinks=True):
                stack.append(entry.path)
            elif not is_image_name(entry.name):
                found.ignored += 1
            else:
                real = canonical_path(entry.path)
                if real in seen_files:
                    continue
                seen_files.add(real)
                _add(found, real, _labels(real, entry.name, annotations))
    found.images.sort(key=lambda image: image.path)
    return found


def discover_changed(root: str | os.PathLike[str], paths: list[str]) -> Discovery:
    """The images among `paths` (files, and folders walked whole) under `root`, labelled as
    `discover(root)` labels them. Paths that are gone or not images are left out: what is
    gone is the sync's to remove, by `only`."""
    top = canonical_path(root)
    found = Discovery(root=top, only=tuple(sorted({os.path.abspath(path) for path in paths})))
    seen: set[str] = set()
    for path in found.only:
        if not is_within(path, top) or not os.path.exists(path):
            continue
        if os.path.isdir(path):
            part = discover(path)
            found.problems += part.problems
            found.ignored += part.ignored
            found.voc = found.voc or part.voc
            images = part.images
        elif is_image_name(path):
            real = canonical_path(path)
            folder = os.path.dirname(real)
            single = Discovery(root=real)
            _add(single, real, _labels(real, os.path.basename(real), _voc_annotations(folder)))
            found.problems += single.problems
            images = single.images
        else:
            found.ignored += 1
            continue
        for image in images:
            if image.path not in seen:
                seen.add(image.path)
                found.images.append(image)
    found.images.sort(key=lambda image: image.path)
    return found


def is_within(path: str, root: str) -> bool:
    """`path` is `root` or lies below the folder `root` (by name: "/a/bc" is not within "/a/b")."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _labels(path: str, name: str, annotations: Path | None) -> tuple[str, ...]:
    if annotations is not None:
        return _voc_labels(annotations / (Path(name).stem + ".xml"))
    return _folder_label(path)


def _add(found: Discovery, path: str, labels: tuple[str, ...]) -> None:
    try:
        info = os.stat(path)
    except OSError as error:
        found.problems.append(Problem(path, f"cannot read file: {error.strerror or error}"))
        return
    if not stat.S_ISREG(info.st_mode):
        found.problems.append(Problem(path, "not a regular file"))
        return
    if not os.access(path, os.R_OK):
        found.problems.append(Problem(path, "permission denied"))
        return
    folder = os.path.dirname(path)
    found.images.append(FoundImage(path, info.st_size, info.st_mtime_ns, labels, folder))


def _folder_label(path: str) -> tuple[str, ...]:
    name = os.path.basename(os.path.dirname(path))
    return (name,) if name else ()


def _voc_annotations(folder: str) -> Path | None:
    """`Annotations/` beside a `JPEGImages` folder, if this folder is one."""
    here = Path(folder)
    if here.name != "JPEGImages":
        return None
    annotations = here.parent / "Annotations"
    return annotations if annotations.is_dir() else None


def _voc_labels(xml_path: Path) -> tuple[str, ...]:
    """Sorted distinct object class names of one VOC annotation; () if none or unreadable."""
    try:
        tree = ElementTree.parse(xml_path)
    except (OSError, ElementTree.ParseError):
        return ()
    names = {
        (node.text or "").strip()
        for node in tree.getroot().iterfind("object/name")
        if (node.text or "").strip()
    }
    return tuple(sorted(names))
