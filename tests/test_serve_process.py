"""`riskd serve` as a real process: signals, exit codes, crash recovery and the embedded PostgreSQL.

What a deployment relies on: SIGTERM drains and exits 0 within the grace; an in-flight unary call
finishes and an open stream is ended with a reason; kill -9 loses at most the last flush interval;
a taken port or an unreachable database is one clear line and a non-zero exit; SIGTERM during
start-up neither hangs nor leaves an embedded cluster behind.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fix_pg import admin, embedded_dir

from riskd_client import Execution, LimitSpec, Order, RiskClient, RiskdError

RISKD = str(Path(sys.executable).with_name("riskd"))
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """One `riskd serve` process; stdout is read line by line, stderr goes to a log file."""

    def __init__(self, log_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RISKD_")}
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [RISKD, "serve", "--listen", "127.0.0.1:0", "--log-level", "INFO", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.target = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_serving(self, timeout: float = START_TIMEOUT) -> str:
        """The target from the "riskd serving on HOST:PORT" line."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no 'serving' line in {timeout}s; stderr:\n{self.stderr}") from None
            if line is None:
                raise AssertionError(f"exited {self.proc.wait()} before serving; stderr:\n{self.stderr}")
            if line.startswith("riskd serving on "):
                self.target = line.removeprefix("riskd serving on ")
                return self.target

    def wait_log(self, text: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.proc.poll() is None, f"exited before logging {text!r}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"{text!r} not logged in {timeout}s:\n{self.stderr}"
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """serve(*args) starts `riskd serve`; every process still running at teardown is killed."""
    started: list[Serve] = []

    def start(*args: str) -> Serve:
        if "--data-dir" not in args:  # the journal and checkpoints: one folder per test, kept across restarts
            args = (*args, "--data-dir", str(tmp_path / "data"))
        proc = Serve(tmp_path / f"riskd-{len(started)}.log", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Live postgres processes whose command line names a folder under data_dir."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if (
                "postgres" in (proc.info["name"] or "")
                and str(data_dir) in cmdline
                and proc.info["status"] != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


# ---------------------------------------------------------------------------------------- SIGTERM


def test_sigterm_drains_in_flight_work_exits_0_and_restart_keeps_state(serve, fresh_dsn: str) -> None:
    grace = 8.0
    args = ("--dsn", fresh_dsn, "--grace", str(grace), "--flush-interval-ms", "20")
    first = serve(*args)
    target = first.wait_serving()
    outcome: list[object] = []
    with RiskClient(target, timeout=20.0) as client:
        client.update_prices({"S": 10.0})
        client.load_positions([("A", "S", 4.0)])
        client.upsert_limits(LimitSpec("qty", "MAX_ORDER_QUANTITY", 100))
        assert client.check(Order("o1", "A", "S", "BUY", 5, 10)).all_accepted

        go_on = threading.Event()

        def batches() -> Iterator[list[Order]]:
            yield [Order("st1", "A", "S", "BUY", 1, 10)]
            go_on.wait(30)

        stream = client.check_stream(batches())
        assert next(stream).all_accepted

        # A unary call held in flight: its commit waits for a table lock the test holds.
        with admin(fresh_dsn) as conn, conn.transaction():
            conn.execute("LOCK TABLE limits IN ACCESS EXCLUSIVE MODE")
            caller = threading.Thread(
                target=lambda: outcome.append(
                    client.upsert_limits(LimitSpec("late", "MAX_ORDER_QUANTITY", 50))
                )
            )
            caller.start()
            time.sleep(0.5)
            assert caller.is_alive()
            started = time.monotonic()
            first.signal(signal.SIGTERM)
            time.sleep(0.5)
            assert caller.is_alive() and first.proc.poll() is None  # still draining
        caller.join(grace)
        code = first.wait(grace + 5)
        took = time.monotonic() - started
        go_on.set()
        with pytest.raises(RiskdError) as info:
            next(stream)

    assert code == 0, first.stderr
    assert took < grace, f"shutdown took {took:.1f}s (grace {grace}s)"
    assert len(outcome) == 1 and outcome[0].persisted is True  # type: ignore[attr-defined]
    assert info.value.code == "UNAVAILABLE" and "shutting down" in info.value.details
    assert "Traceback" not in first.stderr

    second = serve(*args)
    with RiskClient(second.wait_serving(), timeout=10.0) as client:
        assert {lim.limit_id for lim in client.list_limits()} == {"qty", "late"}
        r = client.check(
            [
                Order("o1", "B", "S", "BUY", 1),
                Order("st1", "B", "S", "BUY", 1),
                Order("n1", "A", "S", "BUY", 51),
            ]
        )
        assert [x.failed_checks for x in r] == [
            ("DUPLICATE_ORDER_ID",),
            ("DUPLICATE_ORDER_ID",),
            ("MAX_ORDER_QUANTITY",),  # the "late" limit (50) is in force; the market order used the mark
        ]
        fill = client.report_executions([Execution("o1", "FILL", 5, 10)])
        assert fill.errors == ("",)  # o1 was still open with exactly 5
    second.signal(signal.SIGTERM)
    assert second.wait(grace + 5) == 0


# ---------------------------------------------------------------------------------------- kill -9


def test_kill_9_keeps_everything_older_than_a_few_flush_intervals(serve, fresh_dsn: str) -> None:
    """The promise: a crash loses at most the changes of the last flush interval."""
    flush_ms = 20.0
    args = ("--dsn", fresh_dsn, "--flush-interval-ms", str(flush_ms))
    first = serve(*args)
    with RiskClient(first.wait_serving(), timeout=10.0) as client:
        client.update_prices({"S": 10.0, "T": 20.0})  # write-behind only: no commit wait
        r = client.check([Order(f"k{i}", "A", "S", "BUY", 2, 10) for i in range(50)])
        assert r.all_accepted
        assert client.report_executions(
            [Execution("k0", "FILL", 2, 11), Execution("k1", "CANCELED"), Execution("k2", "FILL", 1, 11)]
        ).all_applied
        client.update_prices({"T": 25.0})
    time.sleep(10 * flush_ms / 1000)
    first.signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    second = serve(*args)
    with RiskClient(second.wait_serving(), timeout=10.0) as client:
        r = client.check(
            [
                Order("k49", "B", "S", "BUY", 1),
                Order("k1", "B", "S", "BUY", 1),
                Order("mk", "B", "T", "BUY", 1),
            ]
        )
        assert [x.failed_checks for x in r] == [("DUPLICATE_ORDER_ID",), ("DUPLICATE_ORDER_ID",), ()]
        # k2 has 1 open of 2, k3 all 2; k0 is closed (a further fill is a late fill).
        out = client.report_executions(
            [Execution("k2", "FILL", 1, 11), Execution("k3", "FILL", 2, 11), Execution("k0", "FILL", 1, 11)]
        )
        assert out.applied == (True, True, True)
        assert out.errors[:2] == ("", "") and out.errors[2].startswith("late fill")
        client.upsert_limits(LimitSpec("notional", "MAX_ORDER_NOTIONAL", 24.0, account="C"))
        # The last mark of T (25) survived: a market order of 1 has notional 25 > 24.
        assert client.check(Order("mk2", "C", "T", "BUY", 1))[0].failed_checks == ("MAX_ORDER_NOTIONAL",)
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0


# ---------------------------------------------------------------------------------------- start-up failures


def test_port_taken_is_one_line_and_exit_1(serve, fresh_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve("--dsn", fresh_dsn, "--listen", f"127.0.0.1:{port}")
        code = proc.wait(60)
    assert code == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"riskd serve: cannot listen on 127.0.0.1:{port}: address in use or not available"
    assert "Traceback" not in proc.stderr


def test_unreachable_database_is_one_line_and_exit_1(serve) -> None:
    port = free_port()
    dsn = f"postgresql://riskd:s3cret-pw@127.0.0.1:{port}/riskdb"
    proc = serve("--dsn", dsn, "--db-timeout", "1")
    code = proc.wait(60)
    assert code == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"riskd serve: cannot connect to PostgreSQL at 127.0.0.1:{port}/riskdb within 1s: "
    )
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_while_waiting_for_the_database_exits_promptly(serve) -> None:
    proc = serve("--dsn", f"postgresql://riskd@127.0.0.1:{free_port()}/x", "--db-timeout", "60")
    proc.wait_log("connecting to PostgreSQL")
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert time.monotonic() - started < 5
    assert "stopped during start-up" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------- embedded PostgreSQL


def test_embedded_postgres_serves_and_stops_with_the_server(serve) -> None:
    """Also: after `python -m riskd_server.warm` (what make venv runs) a start compiles nothing, a
    fresh one or one that recovers state, so every kernel the server calls is in the warm-up."""
    subprocess.run([sys.executable, "-m", "riskd_server.warm"], check=True, capture_output=True, timeout=600)
    data_dir = embedded_dir("riskd-serve-")
    try:
        first = serve("--data-dir", str(data_dir))
        with RiskClient(first.wait_serving(), timeout=10.0) as client:
            client.upsert_limits(LimitSpec("emb", "MAX_ORDER_QUANTITY", 5))
            assert client.check(Order("e1", "A", "S", "BUY", 1, 10)).all_accepted
        assert postgres_processes(data_dir), "the embedded cluster should be running"
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0, first.stderr
        assert postgres_processes(data_dir) == []

        # SIGTERM during start-up: the cluster being started is stopped again, nothing hangs.
        second = serve("--data-dir", str(data_dir))
        second.wait_log("embedded PostgreSQL under")
        with RiskClient(second.wait_serving(), timeout=10.0) as client:
            assert [lim.limit_id for lim in client.list_limits()] == ["emb"]
            assert client.check(Order("e1", "A", "S", "BUY", 1, 10))[0].failed_checks == (
                "DUPLICATE_ORDER_ID",
            )
        second.signal(signal.SIGTERM)
        assert second.wait(30) == 0, second.stderr
        assert postgres_processes(data_dir) == []
        for proc in (first, second):
            assert "compiling kernels" not in proc.stderr, proc.stderr
    finally:
        for proc in postgres_processes(data_dir):
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_sigterm_while_the_embedded_cluster_starts_leaves_nothing_running(serve) -> None:
    data_dir = embedded_dir("riskd-serve-")
    try:
        proc = serve("--data-dir", str(data_dir))
        deadline = time.monotonic() + 30
        while not (data_dir / "pg").exists():  # initdb or pg_ctl start is under way
            assert time.monotonic() < deadline and proc.proc.poll() is None, proc.stderr
            time.sleep(0.01)
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr
        assert "riskd serving" not in "".join(iter_lines(proc))
        assert "stopped during start-up" in proc.stderr
        assert postgres_processes(data_dir) == []
    finally:
        for p in postgres_processes(data_dir):
            p.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def iter_lines(proc: Serve) -> Iterator[str]:
    while True:
        try:
            line = proc.lines.get_nowait()
        except queue.Empty:
            return
        if line is None:
            return
        yield line
