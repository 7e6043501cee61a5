"""bench.subscribers_bench runs end to end at a tiny size (its figures are not asserted, only that
every phase measured what it says: every stream held and reached, the history at its cap)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import subscribers_bench
from riskd_server.config import OPTIONS

TINY = [
    "--subscribers",
    "40",
    "--client-procs",
    "2",
    "--channels",
    "2",
    "--wave",
    "8",
    "--rounds",
    "2",
    "--round-gap",
    "0.1",
    "--settle",
    "0.2",
    "--no-uvloop",
]


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "subscribers.json"
    assert subscribers_bench.main([*TINY, *extra, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_holder_holds_every_stream_and_reaches_each_every_round(tmp_path: Path) -> None:
    report = _run(tmp_path, "--skip-riskd")
    holder = report["holder"]
    assert holder["opened"] == 40 and holder["failed"] == 0
    assert holder["rounds"] == 2 and holder["missing"] == 0 and holder["ended"] == 0
    assert 0 < holder["p50_ms"] <= holder["p99_ms"] <= holder["max_ms"] < 30_000
    assert holder["rss_open"] > 0 and report["riskd"] is None


def test_riskd_phases_measure_streams_throughput_bursts_and_queries(tmp_path: Path, fresh_dsn: str) -> None:
    """The whole bench against `riskd serve` on a fresh database, every phase at a tiny size."""
    serve = [f"--serve-arg=--dsn={fresh_dsn}"]
    cap = 1_000
    if any(o.name == "alert_history" for o in OPTIONS):
        serve.append(f"--serve-arg=--alert-history={cap}")
    else:
        cap = 100_000
    if any(o.name == "alert_dedupe_window" for o in OPTIONS):
        serve.append("--serve-arg=--alert-dedupe-window=1")  # the noisy runs wait it out
    report = _run(
        tmp_path,
        *serve,
        "--skip-holder",
        "--duration",
        "0.6",
        "--warmup",
        "0.2",
        "--alert-interval",
        "0.15",
        "--burst",
        "1500",
        "--bursts",
        "2",
        "--queries",
        "10",
    )
    assert not [n for n in report["notes"] if "stopped" in n], report["notes"]
    riskd = report["riskd"]
    assert riskd["opened"] == 40 and riskd["failed"] == 0 and riskd["missing"] == 0 and riskd["ended"] == 0
    assert 0 < riskd["p50_ms"] <= riskd["p99_ms"] <= riskd["max_ms"] < 30_000
    runs = report["throughput"]["runs"]
    assert [(r["regime"], r["subscribers"]) for r in runs] == [
        ("quiet", 0),
        ("quiet", 40),
        ("noisy", 40),
        ("noisy", 0),
        ("quiet", 0),
    ]
    assert all(r["result"]["orders_per_s"] > 0 for r in runs)
    attached = runs[1]
    assert attached["ticks"] >= 1 and attached["raised"] >= attached["ticks"]
    assert attached["deliveries"] >= 40 * attached["ticks"]  # every fresh alert reached every stream
    assert report["throughput"]["delayed_p99_ms"] > 0
    burst = report["burst"]
    assert burst["raised"] and all(n >= 1500 for n in burst["raised"])
    assert burst["held"] == min(cap, burst["last_seq"] - 1)
    assert burst["held"] + burst["missed"] == burst["last_seq"] - 1
    queries = {q["name"]: q for q in report["queries"]}
    assert queries["account (1 of 1,000), page 100"]["returned"] >= 1
    assert queries["min severity WARNING, page 100"]["returned"] == 100
    assert all(q["rtt_p50_us"] > 0 and q["empty_p50_us"] > 0 for q in queries.values())
    rows = {r["metric"]: r for r in report["rows"]}
    assert any(m.startswith("riskd: 40 SubscribeAlerts") for m in rows), list(rows)


def test_riskd_with_relays_serves_the_subscribers_from_the_relays(tmp_path: Path, fresh_dsn: str) -> None:
    """`--relays 1`: the streams are held by the relay, the server holds one (the relay's)."""
    report = _run(
        tmp_path,
        f"--serve-arg=--dsn={fresh_dsn}",
        "--skip-holder",
        "--relays",
        "1",
        "--duration",
        "0",
        "--burst",
        "0",
        "--queries",
        "0",
    )
    assert not [n for n in report["notes"] if "stopped" in n], report["notes"]
    riskd = report["riskd"]
    assert riskd["opened"] == 40 and riskd["failed"] == 0 and riskd["missing"] == 0 and riskd["ended"] == 0
    rows = {r["metric"]: r for r in report["rows"]}
    assert riskd["server"].startswith("riskd via 1 relays at 127.0.0.1:"), riskd["server"]
    assert any(m.startswith("riskd: 40 SubscribeAlerts (via 1 relays)") for m in rows), list(rows)
