"""User-facing errors.

Every error a user can cause (a bad file, missing data, an exchange that keeps
failing) is an ``EngineError``. The CLI prints its message without a traceback
and exits non-zero; anything else is a bug and keeps its traceback.
"""


class EngineError(Exception):
    """An error caused by input or environment, with a message meant for a person."""


class ConfigError(EngineError):
    """A configuration file is missing, unreadable or invalid."""


class DataError(EngineError):
    """Candles or funding rates are missing, malformed or fail validation."""


class ExchangeError(EngineError):
    """An exchange kept failing after every retry."""
