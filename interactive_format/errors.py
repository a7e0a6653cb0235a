"""Errors whose messages are written for the person using the app.

Anything raised as an `InteractiveFormatError` is shown to the user verbatim at the UI/API
boundary; every other exception is treated as a bug and shown as a generic failure.
"""

import logging
import traceback


class InteractiveFormatError(Exception):
    """A failure with a message meant for the user."""


class InputError(InteractiveFormatError):
    """The user's input (file, text, audio) cannot be used; the message says why."""


class ModelLoadError(InteractiveFormatError):
    """A model spec could not be resolved or loaded; the message names the spec and the fix."""


class GenerationError(InteractiveFormatError):
    """The language model failed while answering."""


class ReplyTimeout(GenerationError):
    """The reply ran past its time limit; what was generated until then may still be shown (cut off)."""


def log_failure(logger: logging.Logger, what: str, error: BaseException, level: int = logging.ERROR) -> None:
    """Log a failure's type and stack; its message (which may quote what the user sent) only when debugging."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", what, exc_info=error)
        return
    stack = "".join(traceback.format_tb(error.__traceback__))
    logger.log(level, "%s: %s (message hidden; debug logging shows it)\n%s", what, error.__class__.__name__, stack)
