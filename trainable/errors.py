"""Errors that reach the user as one line naming what is wrong, never as a traceback."""


class UserError(Exception):
    """Bad input from the user: the console script prints it on one line and exits 1."""


class DataError(UserError):
    """A data set file or folder that cannot be read as what it claims to be."""


class ConfigError(UserError):
    """A configuration key or value that is unknown or out of range."""


def first_line(exc: BaseException) -> str:
    """An exception's message for a one-line error: its first line, at most 200 characters, or its
    type where it has no message."""
    message = str(exc).strip()
    return message.splitlines()[0][:200] if message else type(exc).__name__
