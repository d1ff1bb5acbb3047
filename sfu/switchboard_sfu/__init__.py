"""switchboard_sfu."""
