"""Recently given quotes, by catalog version and request bytes.

Checkout pages ask for the same few carts again and again (a plan, a seat count, a coupon). A
quote is a pure function of the request, the catalog snapshot and the time, so within one
catalog version an identical request gets an identical answer until a coupon in it can expire.
Only the quote time differs: it is stamped on each answer by appending a second ``quote``
field, which protobuf parsers merge into the first (the encoding's rule for repeated singular
message fields), so the cached bytes are never re-encoded.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from billing.domain.quote import Quote
from billing.v1 import rating_pb2


class QuoteCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        self._version = -1
        self._entries: OrderedDict[bytes, tuple[bytes, datetime | None]] = OrderedDict()

    def get(self, version: int, request: bytes, now: datetime) -> bytes | None:
        """The answer stamped with ``now``, or None when there is no valid one."""
        if version != self._version:
            self._entries.clear()
            self._version = version
            return None
        found = self._entries.get(request)
        if found is None:
            return None
        body, valid_until = found
        if valid_until is not None and now > valid_until:
            del self._entries[request]
            return None
        self._entries.move_to_end(request)
        return body + _stamp(now)

    def put(self, version: int, request: bytes, quote: Quote, response: rating_pb2.QuoteResponse) -> None:
        if version != self._version:
            self._entries.clear()
            self._version = version
        expiries = [c.redeem_by for c in quote.coupons if c.redeem_by is not None]
        self._entries[request] = (_without_time(response), min(expiries, default=None))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _without_time(response: rating_pb2.QuoteResponse) -> bytes:
    unstamped = rating_pb2.QuoteResponse()
    unstamped.CopyFrom(response)
    unstamped.quote.ClearField("quote_time")
    return unstamped.SerializeToString(deterministic=True)


def _stamp(now: datetime) -> bytes:
    stamp = rating_pb2.QuoteResponse()
    stamp.quote.quote_time.seconds = int(now.timestamp() // 1)
    stamp.quote.quote_time.nanos = now.microsecond * 1000
    return stamp.SerializeToString()
