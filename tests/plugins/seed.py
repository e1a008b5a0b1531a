"""Seed fixtures (owned by the seed control plane work): real nats-server via seedctl's code."""
