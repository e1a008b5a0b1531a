"""One module per monitor-agent subcommand; each exposes `command`."""
