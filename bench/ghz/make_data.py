"""Write batch1000.json: one CheckOrdersRequest of 1,000 workload orders for ghz's "data-file".

Every client_order_id is a ghz template (call timestamp, request number, index), so each request
carries fresh ids and repeated runs do not collide with ids the server still remembers.

    python bench/ghz/make_data.py [--batch 1000] [--out bench/ghz/batch1000.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run as a script from anywhere: import bench.workload

from bench.workload import IdSource, Workload  # noqa: E402

SIDES = {1: "SIDE_BUY", 2: "SIDE_SELL"}


def request_json(k: int) -> dict:
    cols = Workload().columns(k, IdSource(prefix="x"))
    return {
        "orders": {
            "client_order_id": [f"g{{{{.TimestampUnix}}}}r{{{{.RequestNumber}}}}i{i}" for i in range(k)],
            "account": cols.account,
            "symbol": cols.symbol,
            "side": [SIDES[int(s)] for s in cols.side],
            "quantity": cols.quantity.tolist(),
            "price": cols.price.tolist(),
        }
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=HERE / "batch1000.json")
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(request_json(args.batch), separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.batch} orders)")


if __name__ == "__main__":
    main()
