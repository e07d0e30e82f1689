"""RatingService: live quotes from the in-memory catalog."""

from __future__ import annotations

from typing import Any

from billing.v1 import rating_pb2 as pb
from billing.v1 import rating_pb2_grpc
from rating.api.converters import quotes as convert
from rating.api.errors import translate_errors
from rating.api.servicers._support import Dependencies
from rating.usecases import quotes


class RatingServicer(rating_pb2_grpc.RatingServiceServicer):
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    @translate_errors
    async def Quote(self, request: pb.QuoteRequest, context: Any) -> pb.QuoteResponse:
        customer_id, currency = convert.billed_to(request)
        if customer_id:
            currency = await quotes.currency_of_customer(self.deps.read_only, customer_id)
        cart = convert.quote_request_from_proto(request, currency)
        quote = quotes.quote(self.deps.catalog, cart, self.deps.clock)
        return convert.quote_response(quote)
