"""Domain values as JSON documents (the ``subscriptions.state`` and ``invoices.rating_inputs`` columns).

One codec for every frozen dataclass of the domain, driven by its type hints, so a field added to
``Subscription`` needs no mapping code here. Rules, and why:

- ``Decimal`` is a string ("12.50"), ``Fraction`` a string ("1/3"): a JSON number would pass
  through a float in some reader and come back a cent off.
- ``datetime`` is ISO 8601 with its offset (always UTC here); ``date`` ISO; ``timedelta``
  whole microseconds as an integer.
- Enums are their value; tuples, lists and frozensets are arrays; mappings are objects with
  string keys.
- A field typed as a union of several dataclasses (or as a Protocol such as ``PriceModel``)
  carries its class as ``"$type"``; price models use the catalog's own JSON form.
- Unknown keys are ignored and missing keys take the field's default, so a document written by
  an older build still loads after a field with a default was added.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache
from typing import Any, TypeVar

import orjson

from billing.domain.decimals import format_decimal
from billing.domain.pricing import PriceModel
from billing.store.price_models import model_from_json, model_to_json

T = TypeVar("T")

_TYPE_KEY = "$type"


def to_json(value: Any) -> str:
    """``value`` (a domain dataclass, or any value this codec knows) as compact JSON text."""
    # orjson only writes the plain data ``encode`` made (no float reaches it: ``encode`` refuses
    # them); the standard library's writer was a third of the invoicer's encoding time.
    return orjson.dumps(encode(value)).decode()


def from_json(kind: type[T], text: str | bytes) -> T:
    """The ``kind`` value written by :func:`to_json`."""
    decoded: T = decode(kind, orjson.loads(text))
    return decoded


def encode(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, integers, booleans, None)."""
    kind = type(value)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        encoder = _ENCODERS[kind] = _encoder(kind)
    return encoder(value)


def _identity(data: Any) -> Any:
    return data


def _encode_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: instants are UTC-aware everywhere")
    return value.isoformat()


# Values that are their own JSON: tested by exact type before any call, because most fields of a
# domain value are strings and integers and a call per field was most of the encoding time.
_PLAIN = frozenset({str, int, bool, type(None)})


def _encode_sequence(value: Any) -> list[Any]:
    return [v if type(v) in _PLAIN else encode(v) for v in value]


def _encode_mapping(value: Any) -> dict[str, Any]:
    return {str(k): encode(v) for k, v in value.items()}


# One encoder per type, chosen once and cached: the invoicer encodes a subscription, its lines and
# its coverages on every close, and a chain of isinstance checks per value was most of that cost.
_SCALARS: dict[type[Any], Callable[[Any], Any]] = {
    type(None): _identity,
    bool: _identity,
    int: _identity,
    str: _identity,
    Decimal: format_decimal,
    Fraction: lambda value: f"{value.numerator}/{value.denominator}",
    datetime: _encode_datetime,
    date: lambda value: value.isoformat(),
    timedelta: lambda value: (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds,
}


_ENCODERS: dict[type[Any], Callable[[Any], Any]] = {}


def _encoder(kind: type[Any]) -> Callable[[Any], Any]:
    if kind in _SCALARS:
        return _SCALARS[kind]
    if issubclass(kind, enum.Enum):
        return lambda value: encode(value.value)
    if isinstance(getattr(kind, "kind", None), str) and hasattr(kind, "charge"):  # a price model
        return lambda value: {_TYPE_KEY: "PriceModel", **model_to_json(value)}
    if dataclasses.is_dataclass(kind):
        names = tuple(f.name for f in dataclasses.fields(kind) if f.init)
        tag = str(getattr(kind, "__name__", ""))

        def encode_dataclass(value: Any) -> dict[str, Any]:
            body: dict[str, Any] = {_TYPE_KEY: tag}
            for name in names:
                field = getattr(value, name)
                body[name] = field if type(field) in _PLAIN else encode(field)
            return body

        return encode_dataclass
    if issubclass(kind, Mapping):
        return _encode_mapping
    if issubclass(kind, list | tuple | frozenset | set):
        return _encode_sequence
    for scalar, encoder in _SCALARS.items():  # subclasses (an IntEnum is caught above)
        if issubclass(kind, scalar):
            return encoder
    raise TypeError(f"cannot encode {kind.__name__}")


def decode(kind: Any, data: Any) -> Any:
    return _decoder(kind)(data)


@cache
def _decoder(kind: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return lambda data: data
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if origin is typing.Literal:
        return lambda data: data
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda data: tuple(item(v) for v in data)
        items = [_decoder(a) for a in args]
        return lambda data: tuple(f(v) for f, v in zip(items, data, strict=True))
    if origin is list:
        item = _decoder(args[0])
        return lambda data: [item(v) for v in data]
    if origin is abc.Sequence:
        item = _decoder(args[0])
        return lambda data: tuple(item(v) for v in data)
    if origin in (frozenset, set, abc.Set):
        item = _decoder(args[0])
        return lambda data: frozenset(item(v) for v in data)
    if origin in (dict, abc.Mapping):
        key, value = (_decoder(args[0]), _decoder(args[1])) if args else (_identity, _identity)
        return lambda data: {key(k): value(v) for k, v in data.items()}
    if kind is Decimal:
        return lambda data: None if data is None else Decimal(data)
    if kind is Fraction:
        return lambda data: Fraction(data)
    if kind is datetime:
        return datetime.fromisoformat
    if kind is date:
        return date.fromisoformat
    if kind is timedelta:
        return lambda data: timedelta(microseconds=data)
    if kind in (int, str, bool, type(None)):
        return _identity
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return lambda data: kind(data)
    if kind is PriceModel:
        return _price_model
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind)
    raise TypeError(f"cannot decode {kind!r}")


def _price_model(data: Any) -> Any:
    body = {k: v for k, v in data.items() if k != _TYPE_KEY}
    return model_from_json(body)


def _union(args: tuple[Any, ...]) -> Callable[[Any], Any]:
    options = [a for a in args if a is not type(None)]
    optional = len(options) < len(args)
    if len(options) == 1:
        inner = _decoder(options[0])
        return lambda data: None if data is None else inner(data)
    by_name = {a.__name__: a for a in options if isinstance(a, type)}

    def decode_union(data: Any) -> Any:
        if data is None and optional:
            return None
        if isinstance(data, dict) and _TYPE_KEY in data:
            name = data[_TYPE_KEY]
            if name == "PriceModel":
                return _price_model(data)
            return _decoder(by_name[name])(data)
        for option in options:  # scalars: the first type that accepts the value
            try:
                return _decoder(option)(data)
            except (TypeError, ValueError, ArithmeticError):
                continue
        raise TypeError(f"no type of {args!r} decodes {data!r}")

    return decode_union


def _dataclass(kind: Any) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(kind)
    fields = [(f.name, _lazy(hints[f.name])) for f in _fields(kind)]

    def decode_dataclass(data: Any) -> Any:
        values = {name: decoder()(data[name]) for name, decoder in fields if name in data}
        return kind(**values)

    return decode_dataclass


def _lazy(kind: Any) -> Callable[[], Callable[[Any], Any]]:
    # Resolved on first use: a dataclass may refer to itself or to a class defined after it.
    return lambda: _decoder(kind)


@cache
def _fields(kind: Any) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(kind) if f.init)
