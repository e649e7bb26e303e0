"""The one place the version lives: pyproject, --version and synthmon_build_info read it."""

__version__ = "0.1.0"
