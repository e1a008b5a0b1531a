"""Parser throughput on the fixture corpus, as lines/s and as a ratio to a bare baseline.

    /work/venv/bin/python bench/parser_throughput.py [--repeat 4] [--runs 7]

Baseline (same bytes, same run): `for line in file` (text mode) + one header regex `match`
per line. Measured: the file source's path — bytes read in chunks, split, and fed to
`LogParser.feed_lines` — and the one-line-at-a-time `LogParser.feed` API. Medians of
interleaved runs of CPU time (the machine is shared: absolute figures are noisy, ratios less so).
For context it also times the file source's reading alone (chunks -> decoded lines, a parser
that does nothing): the part of the parser's figure that is not parsing.
"""

from __future__ import annotations

import argparse
import gzip
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor_agent.logs import HEADER_RE, LogParser  # noqa: E402
from monitor_agent.sources.files import Reader  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "node-logs" / "debug"
BARE_HEADER = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+: ")


def corpus_bytes() -> bytes:
    old = gzip.decompress((CORPUS / "debug-2024-01-15.log.gz").read_bytes())
    cur = (CORPUS / "debug-2024-01-16.log").read_bytes()
    return old + cur.rsplit(b"\n", 1)[0] + b"\n"  # without the corrupted, unterminated tail


def baseline(path: Path, regex: re.Pattern) -> tuple[float, int]:
    match = regex.match
    t = time.process_time()
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            n += 1
            match(line)
    return time.process_time() - t, n


def parser_batches(path: Path) -> tuple[float, int, int]:
    t = time.process_time()
    reader = Reader(LogParser(), 0)
    records = 0
    with open(path, "rb") as f:
        while data := f.read(256 * 1024):
            records += len(reader.feed(data))
    records += len(reader.finish())
    return time.process_time() - t, reader.parser.stats.lines, records


class _NullParser:
    """Takes lines and makes nothing of them: what reading costs by itself."""

    resume_pos = None

    def feed_lines(self, lines):
        return []

    def flush(self):
        return []


def reader_only(path: Path) -> tuple[float, int]:
    t = time.process_time()
    reader = Reader(_NullParser(), 0)  # type: ignore[arg-type]
    with open(path, "rb") as f:
        while data := f.read(256 * 1024):
            reader.feed(data)
    reader.finish()
    return time.process_time() - t, reader.lines


def parser_lines(path: Path) -> tuple[float, int]:
    t = time.process_time()
    parser = LogParser()
    feed = parser.feed
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            feed(line)
    parser.flush()
    return time.process_time() - t, parser.stats.lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=4, help="corpus copies in the benchmark file")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    data = corpus_bytes() * args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.log"
        path.write_bytes(data)
        base, own, batch, single, read = [], [], [], [], []
        for _ in range(args.runs):
            base.append(baseline(path, BARE_HEADER))
            own.append(baseline(path, HEADER_RE))
            batch.append(parser_batches(path))
            single.append(parser_lines(path))
            read.append(reader_only(path))
    n = base[0][1]
    assert batch[0][1] == n == single[0][1], (batch[0][1], n, single[0][1])
    med = {k: statistics.median(x[0] for x in v) for k, v in
           {"base": base, "own": own, "batch": batch, "single": single, "read": read}.items()}  # fmt: skip
    ratio = statistics.median(b[0] / p[0] for b, p in zip(base, batch, strict=True))
    print(
        f"corpus: {len(data) / 1e6:.1f} MB, {n} lines ({args.repeat} copies of the fixture day), {args.runs} runs"
    )
    print(f"baseline  for-line + bare header regex : {n / med['base']:>12,.0f} lines/s")
    print(f"baseline  for-line + parser's HEADER_RE: {n / med['own']:>12,.0f} lines/s")
    print(f"parser    feed_lines (file source path): {n / med['batch']:>12,.0f} lines/s  "
          f"({batch[0][2]} records)")  # fmt: skip
    print(f"parser    feed (one line per call)     : {n / med['single']:>12,.0f} lines/s")
    print(f"reading alone (file source, no parsing): {n / med['read']:>12,.0f} lines/s  "
          f"({med['read'] / med['batch']:.0%} of the parser's CPU time)")  # fmt: skip
    print(f"ratio parser/baseline (bare regex)     : {ratio:.3f}  (target >= 0.3)")
    print(
        f"ratio parser/baseline (HEADER_RE)      : {statistics.median(b[0] / p[0] for b, p in zip(own, batch, strict=True)):.3f}"
    )
    print(f"target >= 100000 lines/s               : {'met' if n / med['batch'] >= 100_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
