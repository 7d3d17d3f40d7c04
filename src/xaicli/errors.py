"""The errors a user sees, and the exit codes they map to (the only place exit codes are defined).

Every mistake a user can make (a missing file, an unreadable image, an unknown plugin name, an
output that already exists) raises a :class:`XaicliError` subclass. The CLI turns it into one red
line on stderr and the subclass's exit code; anything else is a bug and keeps its traceback.
Messages name the file and what is wrong, and never carry patient data (DICOM values).
"""

from __future__ import annotations

# Exit codes, documented in docs/exit-codes.md; keep the two in step.
EXIT_OK = 0
EXIT_INTERNAL = 1  # an unexpected error: a bug in xaicli or a plugin (traceback shown)
EXIT_USAGE = 2  # bad command line: unknown option, invalid value (also click's own code)
EXIT_INPUT = 3  # an input file or folder is missing, unreadable or invalid
EXIT_PARTIAL = 4  # some inputs failed; the rest were processed and the failures listed
EXIT_PLUGIN = 5  # unknown plugin name, or a plugin that fails to load
EXIT_OUTPUT = 6  # an output exists (no --overwrite) or cannot be written
EXIT_MODEL = 7  # a model file that cannot be loaded or does not fit the inputs
EXIT_GATE = 8  # a --fail-if gate failed (the outputs are written)
EXIT_INTERRUPTED = 130  # Ctrl-C


class XaicliError(Exception):
    """An error meant for the user: one line, no traceback."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, exit_code: int | None = None, parameter: str | None = None):
        super().__init__(message)
        self.message = message
        #: the Python API parameter the message names (``batch_size``); the CLI shows it as its
        #: option (``--batch-size``), so engine messages stay in API terms
        self.parameter = parameter
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(XaicliError):
    """An option value that cannot work (checked beyond what the argument parser checks)."""

    exit_code = EXIT_USAGE


class InputError(XaicliError):
    """An input file or folder that is missing, unreadable or invalid."""

    exit_code = EXIT_INPUT


class PluginError(XaicliError):
    """An unknown plugin name, or a plugin that fails to import."""

    exit_code = EXIT_PLUGIN


class OutputError(XaicliError):
    """An output that exists already (without --overwrite) or cannot be written."""

    exit_code = EXIT_OUTPUT


class ModelError(XaicliError):
    """A model file that cannot be loaded, or that does not fit the inputs given to it."""

    exit_code = EXIT_MODEL


class PartialFailure(XaicliError):
    """Some items failed while the rest were processed; ``failures`` holds (item, reason) pairs."""

    exit_code = EXIT_PARTIAL

    def __init__(self, message: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.failures = failures


class GateFailure(XaicliError):
    """One or more ``--fail-if`` gates failed: the run's outputs are written, and the job fails."""

    exit_code = EXIT_GATE

    def __init__(self, message: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.failures = failures
