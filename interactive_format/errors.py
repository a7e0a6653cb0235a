"""Errors whose messages are written for the person using the app.

Anything raised as an `InteractiveFormatError` is shown to the user verbatim at the UI/API
boundary; every other exception is treated as a bug and shown as a generic failure.
"""


class InteractiveFormatError(Exception):
    """A failure with a message meant for the user."""


class InputError(InteractiveFormatError):
    """The user's input (file, text, audio) cannot be used; the message says why."""


class ModelLoadError(InteractiveFormatError):
    """A model spec could not be resolved or loaded; the message names the spec and the fix."""


class GenerationError(InteractiveFormatError):
    """The language model failed while answering."""
