"""Configuration: the TOML file and `SYNTHMON_*` environment as validated pydantic
models, secret references, durations. Validation only: nothing here does I/O beyond
reading the file and the secrets it names."""

from synthmon.config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
