"""Recording fakes of launchctl/systemctl/loginctl for the install tests."""
