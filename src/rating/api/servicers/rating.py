"""RatingService: live quotes from the in-memory catalog."""

from __future__ import annotations

from typing import Any

from billing.v1 import rating_pb2 as pb
from rating.api.converters import quotes as convert
from rating.api.errors import decoded, translate_errors
from rating.api.quote_cache import QuoteCache, stamped, unstamped
from rating.api.registration import decode, raw_request
from rating.api.servicers._support import Dependencies
from rating.usecases import quotes


class RatingServicer:
    def __init__(self, deps: Dependencies, cache: QuoteCache | None = None) -> None:
        self.deps = deps
        self.cache = cache or QuoteCache()
        self.templates = convert.LineTemplates()

    @raw_request
    @translate_errors
    async def Quote(self, data: bytes, context: Any) -> bytes:
        """Answers encoded: from the cache by the request's bytes, or priced and then kept."""
        now = self.deps.clock()
        cached = self.cache.get(self.deps.catalog.current().version, data, now)
        if cached is not None:
            return cached
        request = decoded(decode(pb.QuoteRequest, data))
        customer_id, currency = convert.billed_to(request)
        if customer_id:
            currency = await quotes.currency_of_customer(self.deps.read_only, customer_id)
        cart = convert.quote_request_from_proto(request, currency)
        quote = quotes.quote(self.deps.catalog, cart, now)
        body = unstamped(convert.quote_response(quote, self.templates))
        self.cache.put(quote.catalog_version, data, quote, body)
        return stamped(body, now)
