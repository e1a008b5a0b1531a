"""Small writers of runner-node log text for the source tests (the corpus has the big day)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

WALLET = "0x1111222233334444555566667777888899990000"
LOGGER = f"@truebit/worker-runner-node-{WALLET}:1.4.2"


def header(at: datetime, level: str, msg: str) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} {level}: {LOGGER} {msg}\n"


def task_text(exec_id: str | None = None, *, at: datetime | None = None, exit_code: int = 0,
              chain: int | str = 1, block: int = 18_950_234, pretty: bool = False, elapsed_ms: int = 245) -> str:  # fmt: skip
    """A whole task lifecycle as the node logs it."""
    exec_id = exec_id or str(uuid.uuid4())
    at = at or datetime.now(UTC).replace(microsecond=0)
    task = {"executionId": exec_id, "taskId": "js_" + uuid.UUID(exec_id).hex * 2, "chainId": chain,
            "blockNumber": block, "blockHash": "0x" + "ab" * 32, "input": "{\"secret\": 1}"}  # fmt: skip
    body = json.dumps(task, indent=2) if pretty else json.dumps(task)
    metrics = {"elapsed": str(elapsed_ms * 1_000_000), "wasi": {"exitCode": exit_code},
               "metering": {"last": {"steps": 2_000_000_000}, "peak": {"memory": 65536}}}  # fmt: skip
    end = at + timedelta(seconds=1)
    return (
        header(at, "info", "Message received from task_created: " + body)
        + header(at, "info", "Semaphore Executor processing started - Using slot 1/4")
        + header(at, "info", f"Starting task execution for {task['taskId']}")
        + header(end, "info", f"Execution {exec_id} completed")
        + "Command execution stdout: " + json.dumps(metrics) + "\n"
        + header(end, "info", "Message published to compute_outcome")
        + header(end, "info", "Semaphore Executor processing started - Released slot (0/4 now active)")
    )  # fmt: skip
