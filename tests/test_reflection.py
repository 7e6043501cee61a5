"""Server reflection as ghz and grpcurl use it: discover, resolve method symbols, call dynamically.

The full server registers reflection (the engine-only test server does not), so these run against
the riskd_server fixture. The stock Python reflection cannot resolve a method symbol such as
``riskd.v1.RiskService.CheckOrders`` (grpc/grpc#34743); riskd_server.reflection adds that.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from fix_server import RiskdServer
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from riskd.v1 import risk_pb2
from riskd_client import RiskClient
from riskd_server.reflection import MethodAwareReflectionServicer, method_file

SERVICE = "riskd.v1.RiskService"
PROTO_FILE = "riskd/v1/risk.proto"


@pytest.fixture
def channel(riskd_server: RiskdServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(riskd_server.target) as ch:
        yield ch


def reflect(channel: grpc.Channel, symbol: str) -> reflection_pb2.ServerReflectionResponse:
    """One raw file_containing_symbol request on the reflection stream."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return response


def test_lists_every_registered_service(channel: grpc.Channel) -> None:
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert services == {SERVICE, "grpc.health.v1.Health", reflection.SERVICE_NAME}


@pytest.mark.parametrize(
    "symbol",
    [f"{SERVICE}.CheckOrders", f"{SERVICE}.CheckOrderStream", SERVICE, "riskd.v1.CheckOrdersRequest"],
)
def test_resolves_methods_services_and_messages(channel: grpc.Channel, symbol: str) -> None:
    proto = ProtoReflectionDescriptorDatabase(channel).FindFileContainingSymbol(symbol)
    assert proto.name == PROTO_FILE
    assert [s.name for s in proto.service] == ["RiskService"]


def test_unknown_symbols_are_not_found(channel: grpc.Channel) -> None:
    for symbol in (f"{SERVICE}.NoSuchMethod", "riskd.v1.NoSuchMessage", "nothing"):
        response = reflect(channel, symbol)
        assert response.WhichOneof("message_response") == "error_response", symbol
        assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    with pytest.raises(KeyError):
        ProtoReflectionDescriptorDatabase(channel).FindFileContainingSymbol("riskd.v1.Nope")


def test_dynamic_call_with_reflected_types_only(channel: grpc.Channel, riskd_server: RiskdServer) -> None:
    """What ghz/grpcurl do: resolve the method, build the request from reflected descriptors, call."""
    with RiskClient(riskd_server.target) as client:
        client.update_prices({"S": 10.0})
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindMethodByName(f"{SERVICE}.CheckOrders")
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    assert request_cls is not risk_pb2.CheckOrdersRequest  # built from the server's answer, not imported

    request = request_cls()
    orders = request.orders
    orders.client_order_id.extend(["dyn1", "dyn2"])
    orders.account.extend(["A", "A"])
    orders.symbol.extend(["S", "S"])
    orders.side.extend(
        [method.input_type.file.enum_types_by_name["Side"].values_by_name["SIDE_BUY"].number] * 2
    )
    orders.quantity.extend([1.0, 2.0])
    orders.price.extend([10.0, 0.0])
    call = channel.unary_unary(
        f"/{SERVICE}/{method.name}",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    response = call(request, timeout=5)
    assert list(response.result.accepted) == [True, True]
    assert list(response.result.reject_mask) == [0, 0]
    assert response.result.state_version > 0


def test_method_file_unit() -> None:
    pool = descriptor_pool.Default()
    assert risk_pb2.DESCRIPTOR.name == PROTO_FILE  # makes sure the file is in the default pool
    assert method_file(pool, f"{SERVICE}.CheckOrders").name == PROTO_FILE
    assert method_file(pool, f"{SERVICE}.SetTradingState").name == PROTO_FILE
    for symbol in (f"{SERVICE}.Missing", "riskd.v1.CheckOrdersRequest.orders", "CheckOrders", "", "a.b.C.D"):
        assert method_file(pool, symbol) is None, symbol


def test_the_stock_servicer_needs_the_fallback() -> None:
    """Guards the premise: if protobuf ever indexes methods, the override becomes dead code."""
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"{SERVICE}.CheckOrders")
    stock = reflection.ReflectionServicer([SERVICE])._file_containing_symbol(
        request, f"{SERVICE}.CheckOrders"
    )
    ours = MethodAwareReflectionServicer([SERVICE])._file_containing_symbol(request, f"{SERVICE}.CheckOrders")
    assert stock.HasField("error_response")
    assert not ours.HasField("error_response")
    assert ours.file_descriptor_response.file_descriptor_proto
