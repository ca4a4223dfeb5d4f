"""`imgsearch watch` as a user runs it: a real process on real files, Milvus Lite, SQLite and
Prefect's temporary API; changes are checked in the catalog and the summary lines it prints."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from imgsearch.samples import Photo
from imgsearch.vectors import image_id
from tests.conftest import write_folder
from tests.test_cli_signals import Command, env, migrated_env  # noqa: F401 - fixtures reused

pytestmark = pytest.mark.usefixtures("weights")


@pytest.fixture
def shared_env(env: dict[str, str], prefect_api_url: str) -> dict[str, str]:
    """The watcher's flow runs reported to the session's Prefect API, not a temporary one of its own
    (about 8 s of CPU at each start); `env` keeps the default for the test whose point includes it."""
    return {**env, "PREFECT_API_URL": prefect_api_url}


class CatalogReader:
    """The watcher's SQLite catalog, read from outside as another process would."""

    def __init__(self, data: Path) -> None:
        self.engine = create_engine(f"sqlite:///{data / 'catalog.db'}")

    def rows(self) -> dict[str, tuple[str, str | None]]:
        if not Path(self.engine.url.database or "").exists():
            return {}
        with self.engine.connect() as connection:
            return {row.path: (row.status, row.sha256)
                    for row in connection.execute(text("SELECT path, status, sha256 FROM images"))}

    def status(self, path: Path) -> str | None:
        found = self.rows().get(str(path))
        return found[0] if found else None


def eventually(check: Callable[[], bool], command: Command, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        command.watch()
        assert command.process.poll() is None, "".join(command.lines)[-3000:]
        assert time.monotonic() < deadline, "".join(command.output + command.lines)[-3000:]
        time.sleep(0.1)


def batches(command: Command) -> list[str]:
    return [line for line in command.output if " changed under " in line]


def after_a_batch(check: Callable[[], bool], command: Command, seen: int) -> None:
    """`check` holds and a batch beyond the first `seen` has finished: the next change cannot
    land inside a run still going (which would see it, as a user's run would, but not as tested)."""
    eventually(lambda: check() and len(batches(command)) > seen, command)


def test_watch_follows_adds_edits_moves_deletes_and_half_written_files(
        tmp_path: Path, photos: list[Photo], shared_env: dict[str, str]) -> None:
    root = tmp_path / "watched"
    before = write_folder(root, photos[:2], 4)                       # there before the watcher starts
    spare = write_folder(tmp_path / "spare", photos[4:], 8, seed=5)
    catalog = CatalogReader(tmp_path / "data")
    command = Command(["watch", str(root)], shared_env, tmp_path)
    try:
        command.wait_for(lambda: command.said("watching "))
        assert command.said(f"caught up with {root}: found 4, embedded 4")
        assert {path: status for path, (status, _) in catalog.rows().items()} == {
            str(path): "indexed" for path in before}

        new = root / "class_new" / "copied.jpg"                      # cp of a new photo into a new folder
        done = len(batches(command))
        new.parent.mkdir()
        shutil.copy(spare[0], new)
        after_a_batch(lambda: catalog.status(new) == "indexed", command, done)

        # A copy in progress: written in pieces with short pauses, it is not indexed half (it would
        # be recorded `failed`: a truncated JPEG does not decode).
        slow = root / "class_new" / "slow.jpg"
        data = spare[1].read_bytes()
        seen: set[str | None] = set()
        done = len(batches(command))
        with open(slow, "wb") as out:
            for start in range(0, len(data), len(data) // 12 + 1):
                out.write(data[start:start + len(data) // 12 + 1])
                out.flush()
                seen.add(catalog.status(slow))
                time.sleep(0.1)
        after_a_batch(lambda: catalog.status(slow) == "indexed", command, done)
        assert seen == {None}, f"indexed while half written: {seen}"

        # An editor's atomic save: a temporary file renamed over the photo is one change of the photo.
        edited = before[0]
        old_digest = catalog.rows()[str(edited)][1]
        temporary = edited.parent / ".copied.jpg.tmp-1234"
        done = len(batches(command))
        shutil.copy(spare[2], temporary)
        os.replace(temporary, edited)
        after_a_batch(lambda: catalog.rows()[str(edited)][1] != old_digest, command, done)
        assert str(temporary) not in catalog.rows()

        # A file that does not decode is recorded failed, and retried when it changes.
        broken = root / "class_new" / "broken.jpg"
        done = len(batches(command))
        broken.write_bytes(b"\xff\xd8\xff not really a JPEG")
        after_a_batch(lambda: catalog.status(broken) == "failed", command, done)
        done = len(batches(command))
        shutil.copy(spare[3], broken)
        after_a_batch(lambda: catalog.status(broken) == "indexed", command, done)

        # A change during a run waits in the queue for the next batch.
        done = len(batches(command))
        first, second = root / "class_new" / "first.jpg", root / "class_new" / "second.jpg"
        runs_begun = len([line for line in command.lines if "Beginning flow run 'watch" in line])
        shutil.copy(spare[4], first)
        eventually(lambda: len([line for line in command.lines if "Beginning flow run 'watch" in line]) > runs_begun,
                   command)
        shutil.copy(spare[5], second)
        after_a_batch(lambda: catalog.status(first) == catalog.status(second) == "indexed", command, done + 1)
        done = len(batches(command))
        first.unlink()
        second.unlink()
        after_a_batch(lambda: catalog.status(first) is None and catalog.status(second) is None, command, done)

        # Moves keep their vector (reused, not embedded); deletes of a file and a folder reach both stores.
        moved_to = root / "renamed_folder"
        done = len(batches(command))
        os.rename(root / "class_new", moved_to)
        after_a_batch(lambda: catalog.status(moved_to / "copied.jpg") == "indexed" and catalog.status(new) is None,
                      command, done)
        assert "found 3, embedded 0, reused 3, skipped 0, failed 0, removed 3" in batches(command)[-1], batches(command)
        before[1].unlink()
        shutil.rmtree(before[2].parent)
        gone = {str(before[1])} | {str(path) for path in before if path.parent == before[2].parent}
        eventually(lambda: not gone & set(catalog.rows()), command)

        expected = {str(path) for path in root.rglob("*.jpg")}
        assert set(catalog.rows()) == expected
        assert {status for status, _ in catalog.rows().values()} == {"indexed"}
    finally:
        code = command.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and command.said("imgsearch: interrupted"), "".join(command.lines)[-2000:]
    assert command.survivors() == []
    assert command.noise() == []


def test_a_watcher_stopped_with_changes_queued_catches_up_on_start(
        tmp_path: Path, photos: list[Photo], shared_env: dict[str, str]) -> None:
    """SIGTERM as the first batch is taken, before its run: the next start (polling, this time)
    finds the change by its catch-up, then follows new changes by polling."""
    root = tmp_path / "watched"
    write_folder(root, photos[:1], 2)
    spare = write_folder(tmp_path / "spare", photos[4:], 2, seed=5)
    catalog = CatalogReader(tmp_path / "data")
    command = Command(["watch", str(root)], {**shared_env, "IMGSEARCH_FAILPOINT": "watch-batch@1:SIGTERM"}, tmp_path)
    command.wait_for(lambda: command.said("watching "))
    queued = root / "queued.jpg"
    shutil.copy(spare[0], queued)
    assert command.process.wait(timeout=60) == 128 + signal.SIGTERM, "".join(command.lines)[-2000:]
    time.sleep(0.5)
    assert command.survivors() == []
    assert catalog.status(queued) is None, "the batch was not run"

    again = Command(["watch", str(root), "--poll", "0.5"], shared_env, tmp_path)
    try:
        again.wait_for(lambda: again.said("watching "))
        assert again.said(f"caught up with {root}: found 3, embedded 1")
        assert catalog.status(queued) == "indexed"
        assert again.said("polling every 0.5 s")
        polled = root / "polled.jpg"
        shutil.copy(spare[1], polled)
        eventually(lambda: catalog.status(polled) == "indexed" and len(batches(again)) > 0, again)
        # The poll sees the root folder modified too; only the file is the batch, not the whole tree.
        assert "1 changed under" in batches(again)[-1] and "found 1," in batches(again)[-1], batches(again)
    finally:
        code = again.stop(signal.SIGINT)
    assert code == 128 + signal.SIGINT
    assert again.survivors() == []
    assert sorted(catalog.rows()) == sorted(str(path) for path in root.rglob("*.jpg"))
    assert image_id(str(queued)) != image_id(str(polled))


def test_watch_stopped_during_a_batch_leaves_nothing_behind_and_catches_up(
        tmp_path: Path, photos: list[Photo], shared_env: dict[str, str]) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    command = Command(["watch", str(root)], shared_env, tmp_path)
    command.wait_for(lambda: command.said("watching "))
    write_folder(tmp_path / "staging", photos, 40)
    shutil.copytree(tmp_path / "staging", root / "copied")
    command.wait_for(lambda: command.said("chunk 1/"))
    code = command.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and command.said("imgsearch: interrupted"), "".join(command.lines)[-2000:]
    assert command.survivors() == []
    again = Command(["watch", str(root)], shared_env, tmp_path)
    try:
        again.wait_for(lambda: again.said("watching "))
        assert again.said(f"caught up with {root}: found 40,"), "".join(again.output)
        rows = CatalogReader(tmp_path / "data").rows()
        assert sorted(rows) == sorted(str(path) for path in root.rglob("*.jpg"))
        assert {status for status, _ in rows.values()} == {"indexed"}
    finally:
        again.stop(signal.SIGTERM)
    assert again.survivors() == []


def test_watch_stops_cleanly_during_its_catch_up(tmp_path: Path, photos: list[Photo],
                                                 migrated_env: dict[str, str]) -> None:
    # Prefect's temporary API, the child at stake, in a PREFECT_HOME already migrated (as a user's is
    # after the first run): a first start's migration is test_cli_signals' api-starting phase.
    env = migrated_env
    root = tmp_path / "watched"
    write_folder(root, photos, 40)
    command = Command(["watch", str(root)], env, tmp_path)
    command.wait_for(lambda: command.said("chunk 1/"))
    code = command.stop(signal.SIGINT, group=True)
    assert code == 128 + signal.SIGINT and command.said("imgsearch: interrupted"), "".join(command.lines)[-2000:]
    assert command.survivors() == []
    assert not command.said("watching ")


def test_watch_refuses_what_it_cannot_watch(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "file.jpg").write_bytes(b"x")
    for path, message in ((tmp_path / "missing", "no such folder"), (tmp_path / "file.jpg", "not a folder")):
        command = Command(["watch", str(path)], env, tmp_path)
        assert command.process.wait(timeout=120) == 1
        time.sleep(0.2)
        assert [line for line in command.lines if line.startswith("imgsearch:")] == [
            f"imgsearch: error: {message}: {path}\n"], command.lines


def test_a_tree_beyond_the_inotify_budget_is_polled_and_says_so(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher's own choice, in process, with the real notify watcher: a budget smaller than the
    tree's folders gives one line and a polling listener that still sees a new file."""
    from cli import watch
    from imgsearch import watching

    for number in range(5):
        (tmp_path / f"folder_{number}").mkdir()
    monkeypatch.setattr(watching, "watch_limit", lambda: 100)  # this machine's budget is larger
    monkeypatch.setattr(watching, "POLL_SECONDS", 0.2)
    said: list[str] = []
    listener = watch.start_listener([str(tmp_path)], None, said.append)
    try:
        assert listener.polling
        assert len(said) == 1 and "6 folders to watch, more than fs.inotify.max_user_watches=100" in said[0]
        (tmp_path / "folder_3" / "new.jpg").write_bytes(b"x")
        deadline = time.monotonic() + 10
        seen: list[str] = []
        while str(tmp_path / "folder_3" / "new.jpg") not in seen:
            assert time.monotonic() < deadline, seen
            seen += listener.drain(wait=0.2)
    finally:
        listener.close()
    monkeypatch.undo()
    if (watching.watch_limit() or 0) < 6 + watching.WATCH_HEADROOM:
        return  # this machine's own budget is too small for the second half
    inotify = watch.start_listener([str(tmp_path)], None, said.append)
    inotify.close()
    assert not inotify.polling and len(said) == 1, "within the real budget: inotify, nothing said"
