"""Health checks of NATS seed servers over their monitoring endpoints (httpx), Nagios exit codes.

`run_health(spec)` samples every seed concurrently and judges it with the pure checks of
`checks`; `output` and `exposition` turn the reports into text, JSON or Prometheus metrics.
"""

from ..monitoring import EndpointError, Healthz, MonitorClient, new_http_client
from .checks import CHECK_NAMES, Expectations, Thresholds, evaluate
from .drift import DigestOracle
from .runner import ServerReport, check_servers, remember, run_health
from .sample import Sample, collect
from .status import CheckResult, Status, exit_code, worst

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "DigestOracle",
    "EndpointError",
    "Expectations",
    "Healthz",
    "MonitorClient",
    "Sample",
    "ServerReport",
    "Status",
    "Thresholds",
    "check_servers",
    "collect",
    "evaluate",
    "exit_code",
    "new_http_client",
    "remember",
    "run_health",
    "worst",
]
