"""The quote cache: same bytes, fresh time, and nothing stale served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.domain.catalog import Coupon, CouponDuration
from billing.domain.quote import Quote
from billing.v1 import rating_pb2
from rating.api.quote_cache import QuoteCache, unstamped

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _body(total: int) -> bytes:
    return unstamped(_response(total, T0))


def _response(total: int, at: datetime) -> rating_pb2.QuoteResponse:
    response = rating_pb2.QuoteResponse()
    response.quote.currency = "USD"
    response.quote.total = total
    response.quote.lines.add(description="Seats", amount=total, total=total)
    response.quote.quote_time.FromDatetime(at)
    return response


def _quote(*coupons: Coupon) -> Quote:
    return Quote("USD", (), 1, T0, coupons)


def test_a_hit_is_the_same_answer_stamped_with_the_new_time() -> None:
    cache = QuoteCache()
    original = _response(4200, T0)
    cache.put(1, b"cart", _quote(), _body(4200))
    later = T0 + timedelta(seconds=90, microseconds=123456)
    hit = cache.get(1, b"cart", later)
    assert hit is not None
    decoded = rating_pb2.QuoteResponse.FromString(hit)
    assert decoded.quote.quote_time.ToDatetime(tzinfo=UTC) == later
    decoded.quote.quote_time.FromDatetime(T0)
    assert decoded == original


def test_another_catalog_version_or_request_misses() -> None:
    cache = QuoteCache()
    cache.put(1, b"cart", _quote(), _body(1))
    assert cache.get(1, b"other cart", T0) is None
    assert cache.get(2, b"cart", T0) is None
    assert cache.get(1, b"cart", T0) is None, "a newer version must have dropped the old entries"


def test_an_answer_with_a_coupon_is_not_served_after_the_coupon_expires() -> None:
    coupon = Coupon(
        "c1", "SOON", "Soon", CouponDuration.ONCE, percent_off=Decimal(5), redeem_by=T0 + timedelta(hours=1)
    )
    cache = QuoteCache()
    cache.put(1, b"cart", _quote(coupon), _body(1))
    assert cache.get(1, b"cart", T0 + timedelta(minutes=59)) is not None
    assert cache.get(1, b"cart", T0 + timedelta(hours=1, seconds=1)) is None


def test_the_cache_keeps_only_the_most_recently_used_entries() -> None:
    cache = QuoteCache(max_entries=2)
    for name in (b"a", b"b"):
        cache.put(1, name, _quote(), _body(1))
    assert cache.get(1, b"a", T0) is not None  # a is now the most recent
    cache.put(1, b"c", _quote(), _body(1))
    assert cache.get(1, b"b", T0) is None
    assert cache.get(1, b"a", T0) is not None
