"""When runs happen: APScheduler wiring (the one place that touches it), cron
expressions, and sharding of (journey, target) pairs across replicas."""
