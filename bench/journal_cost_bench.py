"""The journal's cost per one-order message in server time, in-process (no transport, no database).

What issue 11's hot path adds to a one-order CheckOrders / CheckOrderStream message: the room
check and the CHECK record (the engine clock, the wall clock, the request bytes and the reply
bytes) appended through the servicer's JournalTap (one write(), fsync per ``--fsync``:
``interval`` = the 10 ms syncer thread). Two servicers over one engine, alternating in blocks so
drift hits both alike:

- ``plain``: request bytes -> ``RiskServicer._check_wire`` -> reply bytes, no journal
  (bench.kernel_bench's server time, the 4.8 µs of the issue on a quiet host);
- ``journal``: the same on a servicer given ``set_journal(JournalTap(journal))``: what the server
  does with the ``journal`` setting on.

The difference of the medians (and of the means: an fsync or a segment roll lands in the mean)
is the journal's cost a message. ``append`` times the tap's part alone (``JournalTap.check`` on
the same request and reply). The running server's figure (the ``journal`` setting on vs off,
riskd_rpc_server_seconds) is bench.durable_bench's step 3b.

    python -m bench.journal_cost_bench [--calls N] [--blocks B] [--fsync none|interval|always]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from riskd.v1 import risk_pb2 as pb
from riskd_server.journal.records import check_payload
from riskd_server.journal.tap import JournalTap
from riskd_server.journal.writer import Journal
from riskd_server.servicer import RiskServicer

from .kernel_bench import _cancel, make_engine
from .workload import RequestBuilder, Workload


@dataclass(frozen=True, slots=True)
class Timing:
    p50_us: float
    p99_us: float
    mean_us: float


@dataclass(frozen=True, slots=True)
class JournalCost:
    calls: int  # per way
    fsync: str
    record_bytes: int  # one one-order CHECK record's payload
    plain: Timing
    journal: Timing
    append: Timing  # JournalTap.check alone (record built and appended)
    syncs: int

    @property
    def cost_p50_us(self) -> float:
        return self.journal.p50_us - self.plain.p50_us

    @property
    def cost_mean_us(self) -> float:
        return self.journal.mean_us - self.plain.mean_us


def _timing(ns: np.ndarray) -> Timing:
    us = ns / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    return Timing(float(p50), float(p99), float(us.mean()))


def run(calls: int = 20_000, blocks: int = 10, fsync: str = "interval") -> JournalCost:
    """``calls`` messages each way, in ``blocks`` alternating blocks; every order cancelled after."""
    workload = Workload()
    engine = make_engine(workload)
    builder = RequestBuilder(workload, 1, pool=4_096, seed=5)
    folder = Path(tempfile.mkdtemp(prefix="riskd-journal-cost-"))
    journal = Journal(folder, fsync=fsync)
    journal.open()
    tap = JournalTap(journal)
    check = RiskServicer(engine)._check_wire
    journaled_servicer = RiskServicer(engine)
    journaled_servicer.set_journal(tap)
    check_journaled = journaled_servicer._check_wire
    perf = time.perf_counter_ns
    ids: list[str] = []
    try:
        for req, _ in (builder.request() for _ in range(1_000)):  # warm both paths
            check(req)
            req2, _ = builder.request()
            check_journaled(req2)
            ids += [pb.CheckOrdersRequest.FromString(r).orders.client_order_id[0] for r in (req, req2)]
        per_block = max(1, calls // blocks)
        plain = np.empty(per_block * blocks, dtype=np.int64)
        journaled = np.empty_like(plain)
        append = np.empty_like(plain)
        for b in range(blocks):
            for way in ("plain", "journal") if b % 2 == 0 else ("journal", "plain"):
                requests = [builder.request()[0] for _ in range(per_block)]
                base = b * per_block
                if way == "plain":
                    for i, req in enumerate(requests):
                        t0 = perf()
                        check(req)
                        plain[base + i] = perf() - t0
                else:
                    for i, req in enumerate(requests):
                        t0 = perf()
                        reply = check_journaled(req)
                        journaled[base + i] = perf() - t0
                    now = engine.now()
                    for i, req in enumerate(requests):  # the tap alone: a second record of each
                        t0 = perf()
                        tap.check(now, req, reply)
                        append[base + i] = perf() - t0
                ids += [pb.CheckOrdersRequest.FromString(r).orders.client_order_id[0] for r in requests]
            _cancel(engine, ids)  # open orders stay level, as with the load generator's cancels
            ids.clear()
        req, _ = builder.request()
        size = len(check_payload(0.0, 0.0, req, check(req)))
        stats = journal.stats()
    finally:
        journal.close()
        shutil.rmtree(folder, ignore_errors=True)
    return JournalCost(
        per_block * blocks, fsync, size, _timing(plain), _timing(journaled), _timing(append), stats.syncs
    )


def print_report(r: JournalCost) -> None:
    print(
        f"    one-order message, server time in-process ({r.calls:,} calls each, alternating blocks, "
        f"fsync {r.fsync}, {r.syncs} syncs; record {r.record_bytes} bytes):",
        flush=True,
    )
    for name, t in (("plain", r.plain), ("with journal", r.journal), ("append alone", r.append)):
        print(f"      {name:<13} p50 {t.p50_us:6.2f} µs  p99 {t.p99_us:7.2f} µs  mean {t.mean_us:6.2f} µs")
    print(
        f"      journal cost: p50 {r.cost_p50_us:+.2f} µs, mean {r.cost_mean_us:+.2f} µs a message",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--fsync", choices=("none", "interval", "always"), default="interval")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = run(args.calls, args.blocks, args.fsync)
    if args.json:
        print(json.dumps({**asdict(r), "cost_p50_us": r.cost_p50_us, "cost_mean_us": r.cost_mean_us}))
    else:
        print_report(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
