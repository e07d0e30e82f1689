"""RatingService: live quotes from the in-memory catalog."""

from __future__ import annotations

from typing import Any

from billing.v1 import rating_pb2 as pb
from rating.api.converters import quotes as convert
from rating.api.errors import translate_errors
from rating.api.quote_cache import QuoteCache
from rating.api.servicers._support import Dependencies
from rating.usecases import quotes


class RatingServicer:
    def __init__(self, deps: Dependencies, cache: QuoteCache | None = None) -> None:
        self.deps = deps
        self.cache = cache or QuoteCache()

    @translate_errors
    async def Quote(self, request: pb.QuoteRequest, context: Any) -> pb.QuoteResponse | bytes:
        now = self.deps.clock()
        key = request.SerializeToString(deterministic=True)
        cached = self.cache.get(self.deps.catalog.current().version, key, now)
        if cached is not None:
            return cached  # already serialized; the registration passes bytes through
        customer_id, currency = convert.billed_to(request)
        if customer_id:
            currency = await quotes.currency_of_customer(self.deps.read_only, customer_id)
        cart = convert.quote_request_from_proto(request, currency)
        quote = quotes.quote(self.deps.catalog, cart, now)
        response = convert.quote_response(quote)
        self.cache.put(quote.catalog_version, key, quote, response)
        return response
