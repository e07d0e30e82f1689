"""``billing quote``: a gRPC client that asks the rating server for a quote and prints it."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

import grpc
from google.protobuf import json_format

from billing.domain.money import exponent
from billing.v1 import catalog_pb2, rating_pb2, rating_pb2_grpc


def build_request(args: argparse.Namespace) -> rating_pb2.QuoteRequest:
    request = rating_pb2.QuoteRequest(seats=args.seats or "", coupon_codes=args.coupon, add_ons=args.addon)
    if args.customer:
        request.customer = args.customer
    else:
        request.currency = args.currency or "USD"
    if args.plan:
        if args.plan.startswith("plans/"):
            request.plan.plan = args.plan
        else:
            request.plan.lookup_key = args.plan
    for item in args.item:
        reference, _, quantity = item.partition("=")
        entry = request.items.add(quantity=quantity or "1")
        if reference.startswith("prices/"):
            entry.price.price = reference
        else:
            entry.price.lookup_key = reference
    for usage in args.usage:
        head, _, quantity = usage.rpartition("=")
        meter, _, properties = head.partition(":")
        estimate = request.usage.add(meter=meter, quantity=quantity)
        for pair in filter(None, properties.split(",")):
            key, _, value = pair.partition("=")
            estimate.properties.append(catalog_pb2.PropertyFilter(key=key, value=value))
    return request


def render_table(quote: rating_pb2.Quote) -> str:
    places = exponent(quote.currency)

    def money(minor: int) -> str:
        return f"{Decimal(minor).scaleb(-places):,.{places}f}"

    rows = [("Item", "Quantity", "Amount", "Discount", "Total")]
    for line in quote.lines:
        rows.append(
            (
                line.description,
                line.quantity,
                money(line.amount),
                money(-sum(d.amount for d in line.discounts)) if line.discounts else "",
                money(line.total),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = []
    for index, row in enumerate(rows):
        out.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append(
        f"Subtotal {money(quote.subtotal)}  Discounts {money(-quote.discount_total)}  "
        f"Total {money(quote.total)} {quote.currency}  (catalog version {quote.catalog_version})"
    )
    return "\n".join(out)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if not args.ca_cert:
        return grpc.insecure_channel(args.target)
    key = Path(args.client_key).read_bytes() if args.client_key else None
    cert = Path(args.client_cert).read_bytes() if args.client_cert else None
    credentials = grpc.ssl_channel_credentials(Path(args.ca_cert).read_bytes(), key, cert)
    return grpc.secure_channel(args.target, credentials)


def run_quote(args: argparse.Namespace) -> int:
    request = build_request(args)
    if not args.token:
        print("give a token: --token or env BILLING_TOKEN (billing tokens create ...)", file=sys.stderr)
        return 1
    metadata = (("authorization", f"Bearer {args.token}"),)
    with _channel(args) as channel:
        try:
            response = rating_pb2_grpc.RatingServiceStub(channel).Quote(
                request, timeout=10, metadata=metadata
            )
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(json_format.MessageToDict(response.quote), indent=2))
    else:
        print(render_table(response.quote))
    return 0
