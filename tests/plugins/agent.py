"""Agent fixtures (owned by the monitor agent work): real agents, in-process or subprocess."""
