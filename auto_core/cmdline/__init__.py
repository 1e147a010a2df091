"""The one-shot CLI face: argument parsing, commands, output."""
