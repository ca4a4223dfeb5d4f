"""Where the suite's CPU goes: `python -m tests.cpu_report FOLDER` sums the per-test CPU seconds
that a run with IMGSEARCH_TEST_CPU=FOLDER wrote (tests/conftest.py), by file and by test, each
with the part spent in the test process itself (the rest: the commands and servers it waited for)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def main(folder: Path, top: int = 25) -> None:
    by_test: Counter[str] = Counter()
    own_by_test: Counter[str] = Counter()
    for log in folder.glob("*.tsv"):
        for line in log.read_text().splitlines():
            nodeid, seconds, *own = line.split("\t")  # logs written before the own column have none
            by_test[nodeid] += float(seconds)
            own_by_test[nodeid] += float(own[0]) if own else 0.0
    by_file: Counter[str] = Counter()
    own_by_file: Counter[str] = Counter()
    for nodeid, seconds in by_test.items():
        by_file[nodeid.split("::")[0]] += seconds
        own_by_file[nodeid.split("::")[0]] += own_by_test[nodeid]
    total = sum(by_test.values())
    print(f"{total / 60:.1f} CPU-minutes in {len(by_test)} tests, "
          f"{sum(own_by_test.values()) / 60:.1f} of them in the test processes themselves")
    for title, counts, own in (("files", by_file, own_by_file), ("tests", by_test, own_by_test)):
        print(f"\nslowest {title} by CPU seconds (all, in the test process):")
        for name, seconds in counts.most_common(top):
            print(f"{seconds:8.1f}  {own[name]:6.1f}  {100 * seconds / total:4.1f}%  {name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(argument) for argument in sys.argv[2:3]))
