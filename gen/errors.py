"""Errors that mean the user's input is wrong; the CLI prints them as one line and exits 2."""


class UserError(Exception):
    """Bad input: the message says what is wrong and what to do about it."""


class ConfigError(UserError):
    """An invalid config value or key."""


class DataError(UserError):
    """Missing, malformed or unknown data."""


class CheckpointError(UserError):
    """A workdir whose checkpoints cannot be resumed with the given config."""


class SampleError(UserError):
    """A model's samples are unusable (NaN or infinite): the message says whose and why."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step."""
