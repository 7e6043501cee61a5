"""gRPC server reflection that also resolves method symbols.

Stock grpcio-reflection asks the descriptor pool for the file containing a symbol, and the pool
does not index methods: ``riskd.v1.RiskService.CheckOrders`` comes back NOT_FOUND
(grpc/grpc#34743). ghz and grpcurl ask for exactly that symbol, so against a stock Python
server they fail without ``--proto`` (bojand/ghz#419). Here a miss falls back to the enclosing
service when the last name component is one of its methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_reflection.v1alpha._base import _file_descriptor_response


def method_file(pool: descriptor_pool.DescriptorPool, symbol: str) -> FileDescriptor | None:
    """The file descriptor declaring ``symbol`` when it names a service method, else None."""
    service_name, _, method = symbol.rpartition(".")
    if not service_name:
        return None
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        return None
    return service.file if method in service.methods_by_name else None


class MethodAwareReflectionServicer(ReflectionServicer):
    """The stock asyncio reflection servicer plus method-symbol lookups."""

    def __init__(self, service_names: Iterable[str], pool: descriptor_pool.DescriptorPool | None = None):
        super().__init__(service_names, pool=pool)

    def _file_containing_symbol(self, request, fully_qualified_name):
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if not response.HasField("error_response"):
            return response
        found = method_file(self._pool, fully_qualified_name)
        if found is None:
            return response
        return _file_descriptor_response(found, request)


def enable_reflection(server: grpc.aio.Server | Any, service_names: Iterable[str]) -> None:
    """Register reflection for service_names (plus the reflection service itself).

    ``server`` is a grpc.aio.Server or anything with its registration methods (the server's
    stream-closing registrar).
    """
    names = [*service_names, reflection.SERVICE_NAME]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(MethodAwareReflectionServicer(names), server)
