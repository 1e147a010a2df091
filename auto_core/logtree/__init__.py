"""Run logs: creating, reading and following them, and keeping the tree bounded (roll, compress, retain)."""
