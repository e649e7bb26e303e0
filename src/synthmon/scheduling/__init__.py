"""When runs happen: the slot-grid dispatcher (scheduler.py), each pair's scheduled job
and its slot bookkeeping (jobs.py, slots.py), and sharding of (journey, target) pairs
across replicas. Cron expressions are APScheduler's `CronTrigger`, wrapped once in
`config.cron`."""
