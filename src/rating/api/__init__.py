"""gRPC transport of the rating service: servicers, converters, the error table, interceptors."""
