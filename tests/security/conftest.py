"""Fixtures of the attack tests: the agent tests' module-wide real seed and raw NATS clients
(re-exported, not copied: one definition of each)."""

from tests.agent.conftest import module_seed, raw_nats  # noqa: F401 - fixtures re-exported
