"""One error model: every failure a user causes or meets is an `ImgsearchError`.

Each kind carries the HTTP status that answers it, so the web app maps errors by
type (`search_app/errors.py`) and the CLI prints any of them as one line with
exit status 1 (`cli/main.py`); nobody matches message text. The built-in base
each kind also has (`ValueError`, `LookupError`, `RuntimeError`) keeps callers
that catch those working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar


class ImgsearchError(Exception):
    """A failure explained by its message alone: bad input, a missing thing, a backend down."""

    status: ClassVar[int] = 400


class BadInput(ImgsearchError, ValueError):
    """The input (a name, a label, a setting, a file) cannot be used as it is."""

    status = 422


class NotFound(ImgsearchError, LookupError):
    """What was asked for does not exist."""

    status = 404


class Conflict(ImgsearchError, ValueError):
    """The request is valid but clashes with what exists (another encoder's collection)."""

    status = 409


class Unavailable(ImgsearchError, RuntimeError):
    """A backend (Milvus, the database, the model) does not answer or is not provisioned;
    retrying later, or after the step the message names, may succeed."""

    status = 503
    backend: ClassVar[str] = "a backend"


class InvalidName(BadInput):
    """A collection name outside the allowed pattern."""


class UsageError(BadInput):
    """A command or a combination of options and settings that cannot work as given;
    the CLI answers it as argparse answers a bad argument (exit status 2)."""


@contextmanager
def renamed(catch: type[BaseException] | tuple[type[BaseException], ...],
            make: Callable[[BaseException], ImgsearchError]) -> Iterator[None]:
    """A library's failure of a kind in `catch` leaves as `make(failure)`, the library's
    own error chained to it; anything else, an ImgsearchError included, passes as it is."""
    try:
        yield
    except ImgsearchError:
        raise
    except catch as failure:
        raise make(failure) from failure
