"""seedctl: the operator control plane for TrueBit federation NATS seed servers."""

__version__ = "0.1.0"
