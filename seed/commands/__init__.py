"""One module per seedctl subcommand; each exposes `command`."""
