"""Production safety: synthetic accounts, pauses (the kill switch), per-target rate
limits and secret scrubbing. `facade.Safety` assembles them for the daemon."""
