"""Export and import of 1,000,000 limits through `riskd serve` and the `riskd` CLI: time and peak RSS.

A JSON Lines file of N limits (10,000 accounts x N/10,000 limits: account-level kinds and
per-symbol MAX_POSITION) is imported into a fresh server (embedded PostgreSQL), exported back,
imported again (nothing changes), and imported once more with every threshold changed. Per step:
the CLI's wall time and peak RSS (its own ru_maxrss, from wait4), and the server's peak RSS during
the step (VmHWM, reset before each step through /proc/PID/clear_refs) and its RSS after.

    python -m bench.limits_io_bench [--limits N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .servers import RESULTS, ROOT, riskd_command, rss_bytes, spawn_riskd

ACCOUNTS = 10_000
_ACCOUNT_KINDS = ("MAX_GROSS_EXPOSURE", "MAX_NET_EXPOSURE", "MAX_ORDER_RATE", "MAX_OPEN_ORDERS")


@dataclass(slots=True)
class Step:
    name: str
    seconds: float
    cli_peak_mb: float
    server_peak_mb: float  # VmHWM during the step (since process start if the reset is refused)
    server_after_mb: float
    output: str  # the CLI's last line


@dataclass(slots=True)
class LimitsIoReport:
    limits: int
    file_mb: float
    server_idle_mb: float  # RSS once SERVING, before any limit
    hwm_reset: bool  # whether /proc/PID/clear_refs reset the peak between steps
    steps: list[Step] = field(default_factory=list)
    command: str = ""


def write_file(path: Path, n: int, bump: float = 0.0) -> None:
    """N limits as JSON Lines, one account's limits together (ids sort by account)."""
    per = max(n // ACCOUNTS, 1)
    with path.open("w") as f:
        lines: list[str] = []
        for i in range(n):
            a, j = divmod(i, per)
            account = f"ACC{a:05d}"
            if j < len(_ACCOUNT_KINDS):
                rec = {"limit_id": f"{account}:{j:03d}", "kind": _ACCOUNT_KINDS[j], "account": account,
                       "symbol": "", "threshold": 1_000_000.0 + j + bump}  # fmt: skip
            else:
                rec = {"limit_id": f"{account}:{j:03d}", "kind": "MAX_POSITION", "account": account,
                       "symbol": f"SYM{j:04d}", "threshold": 10_000.0 + j + bump, "warn_fraction": 0.8}  # fmt: skip
            lines.append(json.dumps(rec))
            if len(lines) >= 50_000:
                f.write("\n".join(lines) + "\n")
                lines.clear()
        if lines:
            f.write("\n".join(lines) + "\n")


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_hwm(pid: int) -> bool:
    """Reset the peak RSS (Linux >= 4.0: writing 5 to clear_refs); False when refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _cli(name: str, target: str, args: list[str], stdout_path: Path | None, server_pid: int) -> Step:
    reset = _reset_hwm(server_pid)
    cmd = [*riskd_command(), "--target", target, "--timeout", "600", "limits", *args]
    out = stdout_path.open("w") if stdout_path else subprocess.PIPE
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = (proc.stdout.read() if proc.stdout else "") + (proc.stderr.read() if proc.stderr else "")
    if stdout_path:
        out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {text[-2000:]}")
    lines = [x for x in text.strip().splitlines() if x]
    return Step(
        name,
        seconds,
        usage.ru_maxrss / 1024,
        _hwm(server_pid) / 2**20 if reset else float("nan"),
        rss_bytes(server_pid) / 2**20,
        lines[-1] if lines else "",
    )


def run(limits: int = 1_000_000, keep: bool = False) -> LimitsIoReport:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="riskd-limitsio-"))
    source, changed, exported = tmp / "limits.jsonl", tmp / "changed.jsonl", tmp / "exported.jsonl"
    write_file(source, limits)
    write_file(changed, limits, bump=1.0)
    server = spawn_riskd("limits-io", tmp / "data", ["--log-level", "INFO"])
    pid = server.proc.pid
    try:
        time.sleep(1.0)
        report = LimitsIoReport(
            limits, source.stat().st_size / 2**20, rss_bytes(pid) / 2**20, _reset_hwm(pid),
            command=f"python -m bench.limits_io_bench --limits {limits}",
        )  # fmt: skip
        t = server.target
        report.steps.append(_cli("import (all added)", t, ["import", str(source)], None, pid))
        report.steps.append(_cli("export", t, ["export", "--output", str(exported)], None, pid))
        report.steps.append(_cli("re-import exported (unchanged)", t, ["import", str(exported)], None, pid))
        report.steps.append(_cli("import, every threshold changed", t, ["import", str(changed)], None, pid))
        report.steps.append(
            _cli(
                "dry run --replace of the first file",
                t,
                ["import", str(source), "--dry-run", "--replace"],
                None,
                pid,
            )
        )
        with exported.open() as f:
            n = sum(1 for _ in f)
        if n != limits:
            raise RuntimeError(f"exported {n} limits, expected {limits}")
    finally:
        server.stop(timeout=120)
        if not keep:
            for p in (source, changed, exported):
                p.unlink(missing_ok=True)
    return report


def print_report(rep: LimitsIoReport) -> None:
    print(
        f"  {rep.limits:,} limits ({ACCOUNTS:,} accounts), file {rep.file_mb:.0f} MB; server RSS idle "
        f"{rep.server_idle_mb:.0f} MB{'' if rep.hwm_reset else ' (peak RSS not resettable: peaks are cumulative)'}"
    )
    print(f"  {'step':<40} {'time':>8} {'CLI peak':>9} {'server peak':>12} {'server after':>13}")
    for s in rep.steps:
        print(
            f"  {s.name:<40} {s.seconds:7.1f}s {s.cli_peak_mb:7.0f}MB {s.server_peak_mb:10.0f}MB "
            f"{s.server_after_mb:11.0f}MB   {s.output}"
        )


def rows_of(rep: LimitsIoReport) -> list:
    """make bench summary rows: time and peak RSS (server, CLI) of the import and the export."""
    from .run_all import Row

    return [
        Row(
            metric=f"limits {step.name}, {rep.limits:,}",
            measured=f"{step.seconds:.1f} s",
            baseline="",
            ratio=None,
            target="constant CLI memory",
            ok=None,
            note=f"peak RSS server {step.server_peak_mb:.0f} MB (idle {rep.server_idle_mb:.0f}), CLI {step.cli_peak_mb:.0f} MB",
        )
        for step in rep.steps
        if step.name in ("import (all added)", "export", "re-import exported (unchanged)")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the JSON Lines files")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    args = parser.parse_args(argv)
    rep = run(args.limits, args.keep)
    print_report(rep)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(rep), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
