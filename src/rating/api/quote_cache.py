"""Recently given quotes, by catalog version and request bytes.

Checkout pages ask for the same few carts again and again (a plan, a seat count, a coupon). A
quote is a pure function of the request, the catalog snapshot and the time, so within one
catalog version an identical request gets an identical answer until a coupon in it can expire.
The key is the request exactly as received: a hit neither decodes nor re-encodes anything (two
encodings of one request are two entries, which costs a miss, never a wrong answer).

Only the quote time differs: answers are kept encoded without it, and ``stamped`` appends a
second ``quote`` field holding just the time, which protobuf parsers merge into the first (the
encoding's rule for a singular message field that appears twice).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from billing.domain.quote import Quote
from billing.v1 import rating_pb2

# QuoteResponse.quote (field 1) and Quote.quote_time (field 7), both length-delimited.
_QUOTE_TAG = bytes([(rating_pb2.QuoteResponse.QUOTE_FIELD_NUMBER << 3) | 2])
_QUOTE_TIME_TAG = bytes([(rating_pb2.Quote.QUOTE_TIME_FIELD_NUMBER << 3) | 2])


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
        return stamped(body, now)

    def put(self, version: int, request: bytes, quote: Quote, body: bytes) -> None:
        """Keep ``body``, the encoded answer to ``request`` without its quote time."""
        if version != self._version:
            self._entries.clear()
            self._version = version
        expiries = [c.redeem_by for c in quote.coupons if c.redeem_by is not None]
        self._entries[request] = (body, min(expiries, default=None))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def unstamped(response: rating_pb2.QuoteResponse) -> bytes:
    """``response`` encoded without its quote time (it is cleared in place)."""
    response.quote.ClearField("quote_time")
    return response.SerializeToString()


def stamped(body: bytes, now: datetime) -> bytes:
    """An encoded answer without quote time, with ``now`` as its quote time."""
    time = Timestamp(seconds=int(now.timestamp() // 1), nanos=now.microsecond * 1000).SerializeToString()
    # A Timestamp encodes in at most 17 bytes, so each length fits in one byte.
    return b"".join((body, _QUOTE_TAG, bytes((len(time) + 2,)), _QUOTE_TIME_TAG, bytes((len(time),)), time))
