"""imgsearch.watching (quiet batches, the inotify budget) and discover_changed, on real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from imgsearch import watching
from imgsearch.discover import discover, discover_changed
from imgsearch.watching import LONGEST_WAIT, QUIET_SECONDS, RETRY_SECONDS, Changes


def test_a_batch_waits_until_every_path_is_quiet(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    (root / "b.jpg").write_bytes(b"b")
    time.sleep(QUIET_SECONDS + 0.1)  # both files' last writes are behind us
    changes = Changes([str(root)])
    now = time.monotonic()
    changes.add([str(root / "a.jpg")], now)
    assert changes.take(now + QUIET_SECONDS / 2) == {}, "an event this recent may be followed by more"
    changes.add([str(root / "b.jpg")], now + QUIET_SECONDS / 2)
    assert changes.take(now + QUIET_SECONDS) == {}, "b's event is not quiet yet, and a waits for it"
    assert changes.take(now + 2 * QUIET_SECONDS) == {str(root): [str(root / "a.jpg"), str(root / "b.jpg")]}
    assert changes.waiting == {}


def test_a_file_still_being_written_is_not_taken(tmp_path: Path) -> None:
    """No event (a poll may miss one), but the file's ctime says it was written just now."""
    root = tmp_path / "watched"
    root.mkdir()
    changes = Changes([str(root)])
    now = time.monotonic()
    changes.add([str(root / "copying.jpg")], now - 10)
    (root / "copying.jpg").write_bytes(b"half")
    assert changes.take(now) == {}
    time.sleep(QUIET_SECONDS + 0.1)
    assert changes.take(time.monotonic()) == {str(root): [str(root / "copying.jpg")]}


def test_a_deleted_path_is_quiet_at_once_but_waits_for_the_other_end_of_its_move(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    (root / "old.jpg").write_bytes(b"x")
    os.rename(root / "old.jpg", root / "new.jpg")  # a rename sets the new name's ctime
    changes = Changes([str(root)])
    now = time.monotonic()
    changes.add([str(root / "old.jpg"), str(root / "new.jpg")], now - 1)
    assert changes.take(now, wall_now=time.time()) == {}, "old.jpg is gone, new.jpg was renamed just now"
    assert changes.take(now, wall_now=time.time() + 1) == {str(root): [str(root / "new.jpg"), str(root / "old.jpg")]}


def test_a_path_that_never_settles_holds_the_others_back_only_so_long(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    changes = Changes([str(root)])
    start = time.monotonic()
    changes.add([str(root / "gone.jpg"), str(root / "busy.jpg")], start)
    later = start + QUIET_SECONDS + 0.1
    changes.add([str(root / "busy.jpg")], later)
    assert changes.take(later + 0.1) == {}
    at_end = start + LONGEST_WAIT + 0.1
    changes.add([str(root / "busy.jpg")], at_end)
    assert changes.take(at_end) == {str(root): [str(root / "gone.jpg")]}
    assert list(changes.waiting) == [str(root / "busy.jpg")]


def test_paths_go_to_their_deepest_root_and_others_are_ignored(tmp_path: Path) -> None:
    outer, inner = tmp_path / "a", tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    changes = Changes([str(outer), str(inner)])
    now = time.monotonic()
    noted = changes.add([str(outer / "x.jpg"), str(inner / "y.jpg"), str(tmp_path / "ab" / "z.jpg")], now - 5)
    assert noted == 2
    assert changes.take(now) == {str(outer): [str(outer / "x.jpg")], str(inner): [str(inner / "y.jpg")]}


def test_a_failed_batch_comes_back_after_the_retry_delay(tmp_path: Path) -> None:
    changes = Changes([str(tmp_path)])
    now = time.monotonic()
    changes.retry_later([str(tmp_path / "x.jpg")], now)
    assert changes.take(now + RETRY_SECONDS - 0.1) == {}
    assert changes.take(now + RETRY_SECONDS + 0.01) == {str(tmp_path): [str(tmp_path / "x.jpg")]}


def test_a_tree_beyond_the_inotify_budget_is_polled_with_the_number_needed(tmp_path: Path) -> None:
    for number in range(30):
        (tmp_path / f"folder_{number}" / "inner").mkdir(parents=True)
    assert watching.folders_in(str(tmp_path)) == 61
    assert watching.polling_reason([str(tmp_path)], 100_000) is None
    assert watching.polling_reason([str(tmp_path)], None) is None  # no inotify here: watchfiles decides
    line = watching.polling_reason([str(tmp_path)], 1000)
    assert line is not None and "\n" not in line
    assert "max_user_watches=1,000" in line and f"sysctl fs.inotify.max_user_watches={61 + watching.WATCH_HEADROOM}" in line
    assert f"polling every {watching.POLL_SECONDS:g} s" in line


def test_watch_limit_reads_the_kernel_setting(tmp_path: Path) -> None:
    (tmp_path / "limit").write_text("8192\n")
    assert watching.watch_limit(str(tmp_path / "limit")) == 8192
    assert watching.watch_limit(str(tmp_path / "missing")) is None
    if Path(watching.WATCH_LIMIT_FILE).exists():
        assert watching.watch_limit() == int(Path(watching.WATCH_LIMIT_FILE).read_text())


def test_discover_changed_labels_as_a_full_walk_does(tmp_path: Path) -> None:
    voc = tmp_path / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    (voc / "JPEGImages" / "2007_000001.jpg").write_bytes(b"jpg")
    (voc / "Annotations" / "2007_000001.xml").write_text(
        "<annotation><object><name>dog</name></object><object><name>cat</name></object></annotation>")
    (tmp_path / "cats" / "inner").mkdir(parents=True)
    (tmp_path / "cats" / "one.png").write_bytes(b"png")
    (tmp_path / "cats" / "inner" / "two.jpg").write_bytes(b"jpg")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")

    whole = {image.path: image for image in discover(tmp_path).images}
    changed = discover_changed(tmp_path, [
        str(voc / "JPEGImages" / "2007_000001.jpg"), str(tmp_path / "cats"), str(tmp_path / "cats" / "one.png"),
        str(tmp_path / "cats" / "notes.txt"), str(tmp_path / "gone.jpg"), "/elsewhere/x.jpg"])
    assert {image.path: image for image in changed.images} == whole
    assert len(changed.images) == 3, "a file named twice (itself and in its folder) counts once"
    assert whole[str(voc / "JPEGImages" / "2007_000001.jpg")].labels == ("cat", "dog")
    assert changed.only[0] == "/elsewhere/x.jpg" and changed.root == str(tmp_path)


def test_collapse_keeps_the_outermost_of_nested_paths() -> None:
    paths = ["/w/a/x.jpg", "/w/a", "/w/ab.jpg", "/w/a/b/y.jpg", "/w/c/z.jpg", "/w/a"]
    assert watching.collapse(paths) == ["/w/a", "/w/ab.jpg", "/w/c/z.jpg"]
    assert watching.collapse([]) == []
