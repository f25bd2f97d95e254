"""Exceptions for problems the user can fix, and the one place a failed file becomes one line.

Every message names the file (or key) at fault, what is wrong and what to do, so the CLI can print
it as one line instead of a traceback.
"""


import os


class BoundariesError(Exception):
    """Base class: a problem with the user's input, reported as one line."""


class AudioError(BoundariesError):
    """An audio file is missing, empty, corrupt, unsupported or unusable."""


class AnnotationError(BoundariesError):
    """A boundary annotation file is missing or malformed."""


class ConfigError(BoundariesError):
    """A config file or override is unknown, mistyped or out of range."""


class DecodingError(BoundariesError, ValueError):
    """A decoding option (threshold, track count) out of range: a ValueError to API callers."""


class CheckpointError(BoundariesError):
    """A checkpoint is missing, corrupt or not a boundaries checkpoint."""


def printable(path) -> str:
    """A path as text that any UTF-8 file or terminal takes: bytes that are not UTF-8 (a Latin-1
    file name) are shown as ``\\xe9`` instead of breaking the write."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def file_failure(path, exc: Exception) -> str:
    """One line for a file that failed, whatever the exception: detect, evaluate and train skip
    the file with it and go on. Under ``--debug`` (``BOUNDARIES_DEBUG``) an unexpected exception
    is raised instead, traceback and all."""
    if isinstance(exc, BoundariesError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{printable(path)}: too large to process in memory; split it into shorter files"
    if os.environ.get("BOUNDARIES_DEBUG"):
        raise exc
    return (f"{printable(path)}: unexpected {type(exc).__name__} ({first_line(exc)}); skipped. "
            "Rerun with --debug for the traceback, and please report it")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
