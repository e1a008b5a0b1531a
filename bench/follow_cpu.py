"""CPU of an agent following a node that completes 10 tasks/s (target: < 2 % of one core).

    /work/venv/bin/python bench/follow_cpu.py [--rate 10] [--seconds 30]

A real Agent (SQLite store, federation off) follows a log folder with the files source; a
separate writer process appends whole task lifecycles (7 log lines each, as the node writes
them) at the given rate. Reported: the agent process's CPU time over the measured window
divided by the wall time, i.e. % of one core, and that every task was stored.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRITER = textwrap.dedent(
    """
    import sys, time, uuid
    sys.path.insert(0, {root!r})
    from tests.ingest.nodelog import task_text
    path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    start = time.monotonic()
    n = 0
    with open(path, "a") as f:
        while time.monotonic() - start < seconds:
            f.write(task_text(str(uuid.uuid4())))
            f.flush()
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
    print(n)
    """
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=10.0, help="tasks per second")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from monitor_agent.agent import Agent
    from monitor_agent.config import load_config
    from monitor_agent.sources.files import FileSource

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        current = logs / "debug-2024-01-15.log"
        current.write_text("")
        agent = Agent(load_config({"DATA_DIR": str(Path(tmp) / "data"), "NODE_LOG_SOURCE": "none"}))
        source = FileSource(agent, logs)
        agent.register_source(source)
        agent.start()
        time.sleep(1.0)  # start-up work is not what this measures
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER.format(root=str(ROOT)),
                str(current),
                str(args.rate),
                str(args.seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        cpu0, wall0 = time.process_time(), time.monotonic()
        out, _ = writer.communicate()
        cpu1, wall1 = time.process_time(), time.monotonic()
        written = int(out.strip())
        deadline = time.monotonic() + 10
        while agent.store.local_stats()["byStatus"]["completed"] < written and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = agent.store.local_stats()["byStatus"]["completed"]
        agent.stop()
    cpu = (cpu1 - cpu0) / (wall1 - wall0) * 100
    print(f"{written} tasks written at {args.rate:g}/s over {wall1 - wall0:.1f} s; {stored} stored")
    print(f"agent CPU while following: {cpu:.2f} % of one core (target < 2 %)")
    return 0 if stored == written else 1


if __name__ == "__main__":
    sys.exit(main())
