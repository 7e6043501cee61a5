"""riskd client: importable with grpcio and protobuf alone."""
