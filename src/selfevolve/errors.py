"""Errors a user can cause: the CLI prints their message and exits with code 2, no traceback."""


class SelfEvolveError(Exception):
    """Bad input from the user: a config value, a run directory, a checkpoint."""

    exit_code = 2


class ConfigError(SelfEvolveError, ValueError):
    """A config key, type or value is not allowed."""


class RunDirError(SelfEvolveError):
    """A run directory is missing, foreign, or would be overwritten."""


class CheckpointError(SelfEvolveError):
    """A checkpoint is truncated, corrupt or from another model."""


class RunCrashed(SelfEvolveError):
    """A run stopped on an unexpected error; its traceback is in the run's error.log and it can resume."""

    exit_code = 1
