"""The federation client: nats-py in one asyncio thread, outbound signing, the receive pipeline."""

from .client import FederationClient
from .pipeline import Accepted, Dropped, ReceivePipeline

__all__ = ["Accepted", "Dropped", "FederationClient", "ReceivePipeline"]
