"""Regenerate the checked-in protobuf code beside proto/riskd/v1/risk.proto.

Writes risk_pb2.py, risk_pb2.pyi, risk_pb2_grpc.py and risk.protoset (the descriptor set the ghz
configs use). With ``--check`` it generates into a temporary folder and exits 1 when the checked-in
files differ, so CI fails on stale code.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

# google/protobuf/*.proto (Timestamp) ship inside grpc_tools; protoc.main does not add them itself.
WELL_KNOWN = Path(protoc.__file__).resolve().parent / "_proto"

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO = "riskd/v1/risk.proto"
OUTPUTS = ("risk_pb2.py", "risk_pb2.pyi", "risk_pb2_grpc.py", "risk.protoset")


def generate(out_root: Path) -> None:
    out_dir = out_root / "riskd" / "v1"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{WELL_KNOWN}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--descriptor_set_out={out_dir / 'risk.protoset'}",
        "--include_imports",
        "--include_source_info",
        PROTO,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if checked-in code is stale")
    opts = parser.parse_args()
    if not opts.check:
        generate(PROTO_ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            name
            for name in OUTPUTS
            if not (PROTO_ROOT / "riskd/v1" / name).exists()
            or not filecmp.cmp(Path(tmp) / "riskd/v1" / name, PROTO_ROOT / "riskd/v1" / name, shallow=False)
        ]
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run `make proto`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
