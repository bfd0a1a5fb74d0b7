"""The command line: options, commands, one-line errors (no logic of its own)."""
