"""riskd protocol package: ``riskd.v1`` holds the protobuf messages and gRPC stubs."""
