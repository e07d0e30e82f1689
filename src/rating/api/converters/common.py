"""Shared pieces of the wire <-> domain converters.

Inbound conversion never stops at the first bad field: a ``Checker`` records each violation under
its path relative to the request message (``price.graduated.tiers[1].up_to``) and carries on, so
one INVALID_ARGUMENT response names every field the client got wrong.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from billing.domain.decimals import parse_decimal
from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import is_currency
from rating.api.converters.resources import Collection, name_problem

T = TypeVar("T")
E = TypeVar("E")
K = TypeVar("K", bound=int)
M = TypeVar("M", bound=Message)

_ZERO = Decimal(0)

# The documented metadata limits (catalog.proto), the same as Stripe's.
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500


def join(field: str, name: str) -> str:
    """``name`` nested under ``field``: "price" + "currency" -> "price.currency"."""
    if not field:
        return name
    if not name or name.startswith("["):
        return f"{field}{name}"
    return f"{field}.{name}"


class Checker:
    """Reads wire values of one message into domain values, recording violations as it goes.

    A value read from a bad field is a placeholder (zero, empty, None): callers compare
    ``failures`` before and after reading to know whether what they built is meaningful. Every
    checker derived with ``at`` shares the collector and the failure count of its root.
    """

    __slots__ = ("_name", "_parent", "_tally", "errors")

    def __init__(
        self,
        errors: Violations,
        field: str = "",
        _tally: list[int] | None = None,
        _parent: Checker | None = None,
    ) -> None:
        self.errors = errors
        self._name = field
        self._parent = _parent
        self._tally = [0] if _tally is None else _tally

    @property
    def field(self) -> str:
        # Joined only when asked for: a valid request (the common case) never needs its paths.
        if self._parent is None:
            return self._name
        return join(self._parent.field, self._name)

    def at(self, name: str) -> Checker:
        return Checker(self.errors, name, self._tally, self)

    def path(self, name: str) -> str:
        return join(self.field, name)

    @property
    def failures(self) -> int:
        return self._tally[0]

    def add(self, name: str, description: str) -> None:
        self.errors.add(self.path(name), description)
        self._tally[0] += 1

    def required(self, value: str, name: str) -> str:
        """A required string; blank counts as missing."""
        if not value.strip():
            self.add(name, "is required")
        return value

    def decimal(self, text: str, name: str, *, default: Decimal | None = None) -> Decimal:
        """A non-negative exact decimal; empty is ``default``, or a violation when there is none."""
        if not text:
            if default is None:
                self.add(name, "is required")
                return _ZERO
            return default
        return self._parse(text, name) or _ZERO

    def optional_decimal(self, text: str, name: str) -> Decimal | None:
        """A non-negative exact decimal, or None for an empty string."""
        return self._parse(text, name) if text else None

    def _parse(self, text: str, name: str) -> Decimal | None:
        try:
            return _non_negative_decimal(text)
        except InvalidArgument as error:
            self.errors.extend(error, self.path(name))
            self._tally[0] += 1
            return None

    def currency(self, code: str, name: str = "currency") -> str:
        if not code:
            self.add(name, "is required")
        elif not is_currency(code):
            self.add(name, f"unknown ISO 4217 currency code {code[:8]!r}")
        return code

    def name(self, text: str, collection: Collection, name: str) -> str:
        """The id in a required resource name ("prices/price_1" -> "price_1")."""
        problem = name_problem(text, collection)
        if problem:
            self.add(name, problem)
            return ""
        return text[len(collection) + 1 :]

    def optional_name(self, text: str, collection: Collection, name: str) -> str | None:
        return self.name(text, collection, name) if text else None

    def names(self, texts: Iterable[str], collection: Collection, name: str) -> tuple[str, ...]:
        """Ids of a repeated resource-name field; a repeated name is refused, not collapsed."""
        ids: list[str] = []
        for index, text in enumerate(texts):
            resource_id = self.name(text, collection, f"{name}[{index}]")
            if resource_id and resource_id in ids:
                self.add(f"{name}[{index}]", f"duplicate {text[:80]!r}")
            ids.append(resource_id)
        return tuple(ids)

    def enum(self, value: K, table: Mapping[K, E], name: str) -> E | None:
        """A required enum: UNSPECIFIED (0) and numbers this server does not know are refused."""
        member = table.get(value)
        if member is None:
            self.add(name, "is required" if value == 0 else f"unknown value {value}")
        return member

    def non_negative(self, value: int, name: str) -> int:
        if value < 0:
            self.add(name, "must not be negative")
        return value

    def metadata(self, entries: Mapping[str, str], name: str = "metadata") -> dict[str, str]:
        """Free-form key/value pairs within the documented limits."""
        if len(entries) > MAX_METADATA_KEYS:
            # Per-key checks are skipped: thousands of violations would not fit in a response.
            self.add(name, f"at most {MAX_METADATA_KEYS} keys are allowed, got {len(entries)}")
            return {}
        for key, value in entries.items():
            path = f"{name}[{key[:MAX_METADATA_KEY_LENGTH]}]"
            if not key or len(key) > MAX_METADATA_KEY_LENGTH:
                self.add(path, f"keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters")
            if len(value) > MAX_METADATA_VALUE_LENGTH:
                self.add(path, f"values must be at most {MAX_METADATA_VALUE_LENGTH} characters")
        return dict(entries)

    def timestamp(self, value: Timestamp, present: bool, name: str) -> datetime | None:
        """An optional instant as an aware UTC datetime; None when the field is unset."""
        if not present:
            return None
        try:
            return datetime_from_timestamp(value)
        except (ValueError, OverflowError):
            self.add(name, "must be a valid timestamp between years 1 and 9999")
            return None

    def instant(self, msg: Message, name: str, *, required: bool = False) -> datetime | None:
        """The Timestamp field ``name`` of ``msg``, truncated to whole seconds as billing
        instants are (docs/billing-rules.md); None when unset and not required."""
        if not msg.HasField(name):
            if required:
                self.add(name, "is required")
            return None
        value = self.timestamp(getattr(msg, name), True, name)
        return None if value is None else value.replace(microsecond=0)

    def time_zone(self, text: str, name: str = "time_zone") -> str:
        """An IANA zone name; empty is UTC."""
        if not text:
            return "UTC"
        if text not in _time_zones():
            self.add(name, f"unknown IANA time zone {text[:64]!r}")
        return text


@functools.lru_cache(maxsize=4096)
def _non_negative_decimal(text: str) -> Decimal:
    """``parse_decimal`` of a field at the root; the same few quantities arrive again and again,
    and a Decimal is immutable, so parsing each text once is enough."""
    return parse_decimal(text, "")


@functools.cache
def _time_zones() -> frozenset[str]:
    # "localtime" and "posixrules" are files of the host's zoneinfo directory, not zones: a
    # customer in "localtime" would be billed in whatever zone the server happens to run in.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})


def convert(field: str, read: Callable[[Checker], T | None]) -> T:
    """Run ``read`` with a fresh collector; raise InvalidArgument naming every bad field."""
    errors = Violations()
    result = read(Checker(errors, field))
    errors.raise_if_any()
    if result is None:
        raise AssertionError(f"a converter gave nothing for {field!r} without saying why")
    return result


def datetime_from_timestamp(value: Timestamp) -> datetime:
    """An aware UTC datetime; sub-microsecond digits are dropped (datetime cannot hold them)."""
    return value.ToDatetime(tzinfo=UTC)


def timestamp_from_datetime(value: datetime) -> Timestamp:
    """A naive datetime is taken as UTC, which is what the domain means by one."""
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional_timestamp(value: datetime | None) -> Timestamp | None:
    return None if value is None else timestamp_from_datetime(value)


# --- update masks (AIP-134) ---------------------------------------------------------------

FieldReader = Callable[[Any, Checker], object]

# How each updatable wire path of a message type becomes a domain value, filled in by the
# resource modules through ``updatable``. Keyed by type so that the public masks stay plain
# ``{wire path: domain attribute}`` mappings a servicer can hold and narrow.
_FIELD_READERS: dict[type[Message], dict[str, FieldReader]] = {}


def updatable(
    message_type: type[M], fields: Mapping[str, tuple[str, Callable[[M, Checker], object]]]
) -> Mapping[str, str]:
    """Declare the updatable paths of ``message_type``: path -> (domain attribute, reader).

    Returns the mask table (path -> domain attribute) to pass to ``changes_from_mask``.
    """
    readers = _FIELD_READERS.setdefault(message_type, {})
    readers.update({path: read for path, (_, read) in fields.items()})
    return MappingProxyType({path: attribute for path, (attribute, _) in fields.items()})


def read_text(name: str) -> Callable[[Message, Checker], str]:
    """The reader of a free-text field of an update."""
    return lambda msg, c: str(getattr(msg, name))


def read_required(name: str) -> Callable[[Message, Checker], str]:
    return lambda msg, c: c.required(str(getattr(msg, name)), name)


def read_optional(name: str) -> Callable[[Message, Checker], str | None]:
    """Empty means "clear it": the domain holds None for an unset unique key."""
    return lambda msg, c: str(getattr(msg, name)) or None


class _HasMetadata(Protocol):
    @property
    def metadata(self) -> Mapping[str, str]: ...


def read_metadata(msg: _HasMetadata, c: Checker) -> dict[str, str]:
    return c.metadata(msg.metadata)


_NESTED = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")


def changes_from_mask(
    msg: Message, paths: Iterable[str], allowed: Mapping[str, str], field: str
) -> dict[str, object]:
    """Domain attribute -> new value for each path of an update mask.

    ``allowed`` maps the wire paths that may change to domain attributes (``PRODUCT_MASK``...);
    any other path (unknown, output only or immutable) is refused on "update_mask" by name, and
    an empty mask is refused as missing: it must never mean "replace everything" by accident.
    Values are validated like on create, with paths under ``field``.
    """
    errors = Violations()
    checker = Checker(errors, field)
    readers = _FIELD_READERS.get(type(msg), {})
    unique = list(dict.fromkeys(paths))
    if not unique:
        errors.add("update_mask", "is required")
    changes: dict[str, object] = {}
    for path in unique:
        attribute = allowed.get(path)
        if attribute is None:
            errors.add("update_mask", _refusal(msg, path, allowed))
        else:
            changes[attribute] = readers[path](msg, checker)
    errors.raise_if_any()
    return changes


def _refusal(msg: Message, path: str, allowed: Mapping[str, str]) -> str:
    top, shown = path.split(".", 1)[0], path[:80]
    if _NESTED.fullmatch(path) is None or top not in msg.DESCRIPTOR.fields_by_name:
        return f"unknown field path {shown!r}"
    if top in allowed:
        # Per-key and sub-field updates (AIP-161 "metadata.key") are not supported: the whole
        # field is replaced, which a client can always express.
        return f"{shown!r}: update {top!r} as a whole"
    return f"field {shown!r} cannot be changed"
