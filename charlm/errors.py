"""The errors charlm raises.

Every message is written for the person at the keyboard: what went wrong, then what to do.
The library only raises; the command line decides how an error looks and which exit code it
gets (see ``cli.py``).
"""


class CharlmError(Exception):
    """Base class of every error charlm reports to a user."""

    exit_code = 1


class CorpusError(CharlmError):
    """A corpus or text file cannot be used: missing, unreadable, empty, too small."""


class ModelFileError(CharlmError):
    """A model file is missing, damaged, or not a charlm model."""


class ConfigError(CharlmError):
    """Options that cannot work together or values out of range."""

    exit_code = 2


class TrainingDiverged(CharlmError):
    """The loss kept becoming NaN or infinite even after lowering the learning rate."""
