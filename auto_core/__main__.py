from auto_core.cli import entry

entry()
