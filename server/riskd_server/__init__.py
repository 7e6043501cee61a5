"""riskd server: gRPC servicer, risk engine, numba kernels and the PostgreSQL store."""
