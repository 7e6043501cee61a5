"""bench/limits_io_bench.py runs end to end on a small scale (its figures are not asserted, its bookkeeping is)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import limits_io_bench


def test_limits_io_bench_runs_every_step_on_a_small_file(tmp_path: Path) -> None:
    out = tmp_path / "limits-io.json"
    assert limits_io_bench.main(["--limits", "20000", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    steps = {s["name"]: s for s in rep["steps"]}
    assert list(steps) == [
        "import (all added)",
        "export",
        "re-import exported (unchanged)",
        "import, every threshold changed",
        "dry run --replace of the first file",
    ]
    assert steps["export"]["output"] == "exported 20000 limit(s)"
    assert steps["re-import exported (unchanged)"]["output"].startswith(
        "imported: 20000 record(s) read (limits version 1)"
    )
    assert steps["import, every threshold changed"]["output"].endswith("(limits version 2)")
    assert all(s["seconds"] > 0 and s["cli_peak_mb"] > 10 and s["server_after_mb"] > 50 for s in rep["steps"])
    assert (
        len(
            limits_io_bench.rows_of(
                limits_io_bench.LimitsIoReport(
                    **{**rep, "steps": [limits_io_bench.Step(**s) for s in rep["steps"]]}
                )
            )
        )
        == 3
    )
