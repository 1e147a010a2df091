"""Where auto keeps its files: the home's paths, the state file, the watch lock, the captured environments."""
