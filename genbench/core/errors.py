"""Errors GenBench raises for bad input: each names the file, key or class at fault."""


class GenBenchError(Exception):
    """A problem with the user's data, models or request (not a bug in GenBench)."""


class ConfigError(GenBenchError):
    """A configuration value is missing, unknown or of the wrong type."""
