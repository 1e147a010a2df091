"""Processes: /proc and psutil reads, identity, process groups, ports, usage, spawning, run marks."""
