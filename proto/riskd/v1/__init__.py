"""Generated protobuf and gRPC code for ``riskd.v1`` (regenerate with ``make proto``)."""
