"""Page tokens and sizes for List calls (AIP-158): keyset pages over time-ordered ids."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Protocol

from billing.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class ListRequest(Protocol):
    page_size: int
    page_token: str


class HasId(Protocol):
    @property
    def id(self) -> str: ...


def page_of(request: ListRequest) -> tuple[str | None, int]:
    """``(after_id, page_size)`` from a request; the token is opaque to clients."""
    if request.page_size < 0:
        raise InvalidArgument.single("page_size", "must not be negative")
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not request.page_token:
        return None, size
    try:
        after = base64.urlsafe_b64decode(request.page_token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument.single("page_token", "is not a token this service issued") from None
    if not after.startswith("after:"):
        raise InvalidArgument.single("page_token", "is not a token this service issued")
    return after.removeprefix("after:"), size


def next_token(items: Sequence[HasId], size: int) -> str:
    """A token for the page after ``items`` (fetched with ``size + 1`` rows), or "" at the end."""
    if len(items) <= size:
        return ""
    return base64.urlsafe_b64encode(f"after:{items[size - 1].id}".encode()).decode()
