"""First ten minutes, timed: docs/quickstart.md played by the book (tests/docs/first_ten_minutes.py).

    .venv/bin/python bench/first_ten_minutes.py --runs 3

Each run: a bare sandbox, the page's shell blocks as written (seed operator, open node A,
enrolled node B), then one task per node; timed until each agent holds the other's task.
Prints each run and the median; the page's manual edits (target 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.docs.first_ten_minutes import manual_edits, play  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    for i in range(args.runs):
        figures, run = play(Path(tempfile.mkdtemp(prefix="first-ten-")) / "machine")
        run.stop()
        print(json.dumps({"run": i + 1, **{k: figures.get(k) for k in ("exchanged", "secondsToExchange")}}))
        if not figures.get("exchanged"):
            return 1
        times.append(figures["secondsToExchange"])
    print(json.dumps({"medianSeconds": statistics.median(times), "manualEdits": manual_edits()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
