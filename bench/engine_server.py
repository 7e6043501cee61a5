"""The real riskd service for end-to-end benchmarks, in its own process.

Default (engine-only): grpc.aio + ``RiskServicer(Engine())`` with the workload's limits, marks and
positions loaded and every kernel warmed, and *no database*: the write-behind is a side exit of the
engine (``Engine.sink``), so this measures the pre-trade path without persistence.

``--full`` (optionally ``--dsn``): the complete server through ``riskd_server.server.start`` (store,
write-behind, health, reflection); the embedded PostgreSQL, when no DSN is given, lives under
bench/results/. This path depends on the store module and is optional.

    python -m bench.engine_server --listen 127.0.0.1:0          # prints "listening 127.0.0.1:PORT ..."
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
from pathlib import Path

import grpc

from .echo_server import SERVER_OPTIONS, run_loop, serve_until_signal
from .workload import Workload

RESULTS = Path(__file__).resolve().parent / "results"


async def start_engine_only(listen: str, workload: Workload) -> tuple[grpc.aio.Server, int, object]:
    from riskd_server.engine import Engine
    from riskd_server.servicer import RiskServicer, add_risk_service
    from riskd_server.warm import warm_up

    warm_up()
    engine = Engine()
    workload.load_into(engine)
    engine.index_names()  # as restore() does in the real server
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_risk_service(RiskServicer(engine), server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    # As riskd_server.server.start does: the start-up objects out of the collector's reach.
    gc.collect()
    gc.freeze()
    await server.start()
    return server, port, engine


class _Full:
    """Adapter so serve_until_signal can stop a RunningServer like a grpc.aio.Server."""

    def __init__(self, running, data_dir: Path | None) -> None:
        self.running = running
        self.data_dir = data_dir

    async def stop(self, grace: float) -> None:
        await self.running.stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


async def start_full(listen: str, dsn: str, workload: Workload) -> tuple[_Full, int]:
    from riskd_server.config import Settings
    from riskd_server.server import start

    data_dir = None
    if not dsn:
        data_dir = RESULTS / f"pg-{os.getpid()}"
        data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(listen=listen, dsn=dsn, data_dir=str(data_dir or RESULTS), log_level="WARNING")
    running = await start(settings)
    workload.load_into(running.engine)  # through the engine, so the changes go to the write-behind
    return _Full(running, data_dir), running.port


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--full", action="store_true", help="the complete server (store, write-behind)")
    parser.add_argument("--dsn", default="", help="PostgreSQL DSN for --full (implies --full)")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workload = Workload()
    host = args.listen.rpartition(":")[0]

    async def start() -> tuple[object, str, int]:
        if args.full or args.dsn:
            server, port = await start_full(args.listen, args.dsn, workload)
            return server, host, port
        server, port, _ = await start_engine_only(args.listen, workload)
        return server, host, port

    banner = "full" if (args.full or args.dsn) else "engine-only (no database)"
    run_loop(serve_until_signal(start, banner), use_uvloop=not args.no_uvloop)


if __name__ == "__main__":
    main()
