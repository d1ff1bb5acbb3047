"""switchboard_turn."""
