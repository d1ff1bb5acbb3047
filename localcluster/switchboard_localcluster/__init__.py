"""switchboard_localcluster."""
