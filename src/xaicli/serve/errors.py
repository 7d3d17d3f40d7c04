"""What the service refuses, as one status and one message: the HTTP app sends them as
``{"error": message}`` with that status, the chat bot as its reply. Messages name the form field
and what is wrong, never the file's name or a value from inside it (patient data)."""

from __future__ import annotations

from xaicli.errors import InputError, ModelError, PluginError, UsageError, XaicliError


class Refused(Exception):
    """A request the service will not or cannot answer: ``status`` (HTTP), ``message`` (one line)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def refusal(error: XaicliError) -> Refused:
    """xaicli's own errors as a refusal: a bad parameter 400 (a usage or plugin error, or any
    error that names the parameter it is about), an input the model cannot take 422."""
    if isinstance(error, (UsageError, PluginError)) or error.parameter:
        return Refused(400, error.message)
    if isinstance(error, (InputError, ModelError)):
        return Refused(422, error.message)
    return Refused(500, "the service failed on this request")
