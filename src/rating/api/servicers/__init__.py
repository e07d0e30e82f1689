"""Thin gRPC servicers: convert the request, await the use case, convert the response."""
