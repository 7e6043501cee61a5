"""The contract: checked-in generated code matches proto/, and the proto follows the style guide.

Stale generated code means clients and server silently disagree on the wire; the negative tests
prove the comparison notices a change (a comment only reaches the descriptor set, a field reaches
every output).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor

from riskd.v1 import risk_pb2

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_proto.py"
CHECKED_IN = ROOT / "proto" / "riskd" / "v1"


@pytest.fixture(scope="module")
def gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outputs(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def test_check_script_passes_on_the_checked_in_code() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_regenerated_outputs_are_byte_identical(gen_proto: ModuleType, tmp_path: Path) -> None:
    gen_proto.generate(tmp_path)
    fresh = outputs(tmp_path / "riskd" / "v1", gen_proto.OUTPUTS)
    assert set(fresh) == {"risk_pb2.py", "risk_pb2.pyi", "risk_pb2_grpc.py", "risk.protoset"}
    checked_in = outputs(CHECKED_IN, gen_proto.OUTPUTS)
    assert [name for name in fresh if fresh[name] != checked_in[name]] == []


def _copy_with(tmp_path: Path, old: str, new: str) -> Path:
    root = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", root)
    proto = root / "riskd" / "v1" / "risk.proto"
    text = proto.read_text()
    assert old in text
    proto.write_text(text.replace(old, new, 1))
    return root


def test_a_changed_comment_or_field_is_noticed(
    gen_proto: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked_in = outputs(CHECKED_IN, gen_proto.OUTPUTS)

    monkeypatch.setattr(
        gen_proto, "PROTO_ROOT", _copy_with(tmp_path / "c", "// Side of an order.", "// Side.")
    )
    gen_proto.generate(tmp_path / "out-comment")
    changed = outputs(tmp_path / "out-comment" / "riskd" / "v1", gen_proto.OUTPUTS)
    assert [n for n in changed if changed[n] != checked_in[n]] == ["risk.protoset"]

    monkeypatch.setattr(
        gen_proto,
        "PROTO_ROOT",
        _copy_with(
            tmp_path / "f",
            "  repeated double price = 6;\n}",
            "  repeated double price = 6;\n  string tag = 7;\n}",
        ),
    )
    gen_proto.generate(tmp_path / "out-field")
    changed = outputs(tmp_path / "out-field" / "riskd" / "v1", gen_proto.OUTPUTS)
    assert {n for n in changed if changed[n] != checked_in[n]} >= {
        "risk_pb2.py",
        "risk_pb2.pyi",
        "risk.protoset",
    }


def test_check_mode_fails_on_stale_code(
    gen_proto: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check against a proto tree whose .proto changed but whose generated files did not."""
    monkeypatch.setattr(gen_proto, "PROTO_ROOT", _copy_with(tmp_path, "// Side of an order.", "// Side."))
    monkeypatch.setattr(sys, "argv", ["gen_proto.py", "--check"])
    assert gen_proto.main() == 1
    assert "stale generated code: risk.protoset" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- style


def upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def all_enums() -> list[descriptor.EnumDescriptor]:
    enums = list(risk_pb2.DESCRIPTOR.enum_types_by_name.values())
    pending = list(risk_pb2.DESCRIPTOR.message_types_by_name.values())
    while pending:
        msg = pending.pop()
        enums.extend(msg.enum_types)
        pending.extend(msg.nested_types)
    return enums


def test_enum_values_carry_the_enum_prefix_and_zero_is_unspecified() -> None:
    enums = all_enums()
    assert {e.name for e in enums} >= {"Side", "RiskCheck", "ExecType", "TradingState"}
    for enum in enums:
        prefix = upper_snake(enum.name) + "_"
        bad = [v.name for v in enum.values if not v.name.startswith(prefix)]
        assert bad == [], f"{enum.name}: values without prefix {prefix}: {bad}"
        assert enum.values_by_number[0].name == prefix + "UNSPECIFIED", enum.name


def test_upper_snake() -> None:
    assert [upper_snake(n) for n in ("Side", "RiskCheck", "TradingState")] == [
        "SIDE",
        "RISK_CHECK",
        "TRADING_STATE",
    ]


def test_every_rpc_has_its_own_request_and_response() -> None:
    seen: set[str] = set()
    for service in risk_pb2.DESCRIPTOR.services_by_name.values():
        assert service.methods, service.name
        for method in service.methods:
            assert method.input_type.name == f"{method.name}Request", method.name
            assert method.output_type.name == f"{method.name}Response", method.name
            for t in (method.input_type.full_name, method.output_type.full_name):
                assert t not in seen, f"{t} is shared between RPCs"
                seen.add(t)
