"""The watcher and what only it does: launching runs, watching deaths, starting a watcher on demand."""
