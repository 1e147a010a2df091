"""auto: a per-user daemon process manager (headless core; never imports Textual)."""

__version__ = "0.1.0"
