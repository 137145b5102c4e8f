"""One exception family for everything a user can get wrong.

The CLI maps every :class:`XpusimError` to one clear message and exit code 2; any other
exception is a bug in xpusim and keeps its traceback.
"""

from __future__ import annotations


class XpusimError(Exception):
    """Base class of all errors caused by the user's input."""

    exit_code = 2


class InputError(XpusimError):
    """Bad input: a file, a field or a value that cannot be used.

    ``file`` and ``path`` (the dotted field path) are kept apart from the message so that
    callers can render them consistently: ``FILE: PATH: MESSAGE``.
    """

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        self.message = message
        self.file = file
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        """The error as one line: ``FILE: PATH: MESSAGE`` (the parts that are known)."""
        parts = [p for p in (self.file, self.path) if p]
        return ": ".join([*parts, self.message])


class UnknownProfile(InputError):
    """A hardware or model id that is neither built in nor a path; the message lists close
    matches. A scenario reports it against its own `hardware`/`model` field."""


class InputErrors(XpusimError):
    """Several input errors found in one file (pydantic reports them all at once)."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


class DoesNotFit(XpusimError):
    """The model, with its optimizer and activations, does not fit the device memory."""
