"""Where the suite's CPU goes: `python -m tests.cpu_report FOLDER` sums the per-test CPU seconds
that a run with IMGSEARCH_TEST_CPU=FOLDER wrote (tests/conftest.py), by file and by test."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def main(folder: Path, top: int = 25) -> None:
    by_test: Counter[str] = Counter()
    for log in folder.glob("*.tsv"):
        for line in log.read_text().splitlines():
            nodeid, seconds = line.rsplit("\t", 1)
            by_test[nodeid] += float(seconds)
    by_file: Counter[str] = Counter()
    for nodeid, seconds in by_test.items():
        by_file[nodeid.split("::")[0]] += seconds
    total = sum(by_test.values())
    print(f"{total / 60:.1f} CPU-minutes in {len(by_test)} tests")
    for title, counts in (("files", by_file), ("tests", by_test)):
        print(f"\nslowest {title} by CPU seconds:")
        for name, seconds in counts.most_common(top):
            print(f"{seconds:8.1f}  {100 * seconds / total:4.1f}%  {name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
