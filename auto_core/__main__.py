from auto_core.cmdline.cli import entry

entry()
