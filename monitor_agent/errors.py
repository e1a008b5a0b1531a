"""The agent's one error type: every failure the operator may see carries a FED code or is a config error."""

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
