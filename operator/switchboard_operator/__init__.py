"""switchboard_operator."""
