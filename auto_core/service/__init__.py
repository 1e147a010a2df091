"""The login service: `auto install` / `uninstall` (launchd, systemd --user) and `auto status`."""
