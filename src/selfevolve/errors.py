"""Errors a user can cause: the CLI prints their message and exits with code 2, no traceback."""


class SelfEvolveError(Exception):
    """Bad input from the user: a config value, a run directory, a checkpoint."""


class ConfigError(SelfEvolveError, ValueError):
    """A config key, type or value is not allowed."""


class RunDirError(SelfEvolveError):
    """A run directory is missing, foreign, or would be overwritten."""


class CheckpointError(SelfEvolveError):
    """A checkpoint is truncated, corrupt or from another model."""
