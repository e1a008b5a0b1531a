"""The agent's error types: every failure the operator may see carries a FED code or is a config error.

`FederationError` is a federation failure (PROTOCOL.md §5); `StoreError` is the local SQLite
database refusing a read or write. The operator sees the latter as FED_006 (the status API's
`lastError`, the `federation_error` event, the metrics): the code says "database error" whichever
side it is on, and the agent's local monitoring reports it the same way as before.
"""

from __future__ import annotations

from .protocol import FED_MEANING, FedCode


class AgentError(Exception):
    """Base class of the agent's own errors."""


class ConfigError(AgentError):
    """A malformed setting. Its message is the one line printed at start-up."""

    def __init__(self, variable: str, value: object, allowed: str):
        self.variable = variable
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {variable}={value!r}: expected {allowed}")


class FederationError(AgentError):
    """A federation failure with its PROTOCOL.md §5 code."""

    def __init__(self, code: FedCode, message: str | None = None):
        self.code = FedCode(code)
        self.message = message or FED_MEANING[self.code]
        super().__init__(f"{self.code}: {self.message}")


class StoreError(AgentError):
    """The local database failed (disk full, read-only, corrupt, closed): reported as FED_006.

    Nothing already stored is lost; the caller keeps its cursor (or the writer its batch) and
    tries again."""

    code = FedCode.DATABASE_ERROR

    def __init__(self, message: str):
        self.message = message
        super().__init__(f"{self.code}: {message}")
