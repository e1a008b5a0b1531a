"""Wall time of `seedctl deploy` converging a 3-node seed cluster from nothing, and of a
no-change re-run (median of N each). Real ansible-runner, local connection, process mode.

    /work/venv/bin/python bench/ansible_converge.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ansible.cluster import make_cluster  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    nats_server = str(Path(sys.executable).parent / "nats-server")
    converge, rerun = [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-ansible-") as tmp:
            cluster = make_cluster(Path(tmp), nats_server)
            try:
                t0 = time.perf_counter()
                first = cluster.deploy()
                t1 = time.perf_counter()
                second = cluster.deploy()
                t2 = time.perf_counter()
            finally:
                cluster.stop_all()
            assert first.ok and second.ok, cluster.output()
            assert second.changed == 0, second.changed_tasks
            converge.append(t1 - t0)
            rerun.append(t2 - t1)
            print(f"run {i + 1}: converge {t1 - t0:.1f} s, no-change re-run {t2 - t1:.1f} s", flush=True)
    c, r = statistics.median(converge), statistics.median(rerun)
    print(
        f"3-node cluster, median of {args.runs}: converge from nothing {c:.1f} s, no-change re-run {r:.1f} s"
    )
    print(f"re-run / converge ratio: {r / c:.2f}")


if __name__ == "__main__":
    main()
