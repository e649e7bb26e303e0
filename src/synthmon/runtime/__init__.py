"""The process around the pipeline: logging setup and the event-loop watchdog."""
