"""The watcher's timing constants, in a module that imports nothing: the faces wait by them
too (``lifecycle``), and a one-shot command must not pay for the watcher's imports."""

STOP_POLL = 0.02  # how often the processes of a stopping run are looked at
KILL_WAIT = 5.0  # how long a run's processes may take to go after SIGKILL before it is reported
PORT_WAIT = 10.0  # a restart waits this long for its old instance's port to be released
# A crash loop costs little whatever the backoff settings (even a base of 0): two starts of
# one service are at least MIN_START_INTERVAL apart, and once a service has started BURST
# times within BURST_WINDOW, at least BURST_INTERVAL apart (one log file a second at most).
MIN_START_INTERVAL = 0.1
BURST, BURST_WINDOW, BURST_INTERVAL = 10, 10.0, 1.0
