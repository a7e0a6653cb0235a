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


class NotFound(InputError):
    """No such conversation or turn for this owner (the two cases are indistinguishable)."""

    def __init__(self, message: str = "No such conversation.") -> None:
        super().__init__(message)


class ModelLoadError(InteractiveFormatError):
    """A model spec could not be resolved or loaded; the message names the spec and the fix."""


class GenerationError(InteractiveFormatError):
    """The language model failed while answering."""


class Busy(InteractiveFormatError):
    """A turn that could no longer finish within its time budget is refused rather than left to time out."""

    def __init__(self, message: str = "The server is busy; please try again in a moment.") -> None:
        super().__init__(message)


class ReplyTimeout(GenerationError):
    """The reply ran past its time limit; what was generated until then may still be shown (cut off)."""


def log_failure(logger: logging.Logger, what: str, error: BaseException, level: int = logging.ERROR) -> None:
    """Log a failure's type and stack; its message (which may quote what the user sent) only when debugging."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", what, exc_info=error)
        return
    stack = "".join(traceback.format_tb(error.__traceback__))
    logger.log(level, "%s: %s (message hidden; debug logging shows it)\n%s", what, error.__class__.__name__, stack)


class MissingPackageError(InteractiveFormatError):
    """A Python package a feature imports is not installed; the message names it and the install command."""


APP_LOCK = "requirements.lock"  # the app's tested packages
DEV_LOCK = "requirements-dev.lock"  # the app's, the tests' and training's
# Import names whose PyPI package is called something else.
PIP_NAMES = {
    "PIL": "pillow",
    "whisper": "openai-whisper",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "chitchat_dataset": "chitchat-dataset",
    "gradio_client": "gradio-client",
}


def missing_package(error: ModuleNotFoundError, feature: str = "The app", lock: str = APP_LOCK) -> MissingPackageError:
    """One line for an import that failed: which package, and the command that installs the tested version."""
    module = (error.name or str(error)).split(".")[0]
    pip = PIP_NAMES.get(module, module.replace("_", "-"))
    install = f"pip install --require-hashes -r {lock}"
    if module == "torch":  # each platform brings its own build; the locks leave it out (README: Run it)
        install = "pip install torch==2.13.0 (on a CPU-only machine, PyTorch's CPU build)"
    return MissingPackageError(f"{feature} needs the Python package '{pip}', which is not installed. Run: {install}")


def require(module: str, feature: str, lock: str = APP_LOCK):
    """Import `module` for `feature`, or raise MissingPackageError naming its package and the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise missing_package(e, feature, lock) from None
