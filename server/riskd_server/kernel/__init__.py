"""Pure numba kernels over the columnar state (no gRPC, asyncio or PostgreSQL here)."""
