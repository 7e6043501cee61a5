"""ImportReturns chunk validation (server) and the client's CSV reading and demo data, without a
server: calendar dates against datetime, errors naming chunk/field/row, lines named in files."""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskd_client._returns import ReturnsFileError, demo_rows, parse_day, read_csv_chunks, write_demo_csv
from riskd_server.risk.returns import ReturnsInputError, valid_days, validate_chunk


def is_date(day: int) -> bool:
    try:
        dt.date(day // 10000, day // 100 % 100, day % 100)
    except ValueError:
        return False
    return 19000101 <= day <= 29991231


@given(st.lists(st.integers(18991231, 30000101), max_size=50))
def test_valid_days_against_datetime(days: list[int]) -> None:
    assert valid_days(np.array(days, dtype=np.int64)).tolist() == [is_date(d) for d in days]


@pytest.mark.parametrize(
    ("day", "ok"),
    [(20240229, True), (20230229, False), (19000228, True), (19000229, False), (20000229, True),
     (20261131, False), (20261200, False), (20261301, False), (18991231, False), (29991231, True)],
)  # fmt: skip
def test_valid_days_table(day: int, ok: bool) -> None:
    assert bool(valid_days(np.array([day]))[0]) is ok
    assert is_date(day) is ok


def test_validate_chunk_ok_and_errors() -> None:
    chunk = validate_chunk(["A", "B"], [20260105, 20260106], [0.01, -1.0], 0)
    assert len(chunk) == 2 and chunk.day.dtype == np.int64
    with pytest.raises(
        ReturnsInputError, match=r"chunk\[2\]: columns of unequal length \(symbol 2, day 1, ret 2\)"
    ):
        validate_chunk(["A", "B"], [20260105], [0.0, 0.0], 2)
    with pytest.raises(ReturnsInputError) as err:
        validate_chunk(["A", "x" * 129, "C"], [20260105, 20260105, 20261340], [math.inf, 0.0, 0.0], 3, 100)
    text = str(err.value)
    assert text.startswith("chunk[3].ret[0]: inf is not finite (row 100 of the stream)")
    assert "chunk[3].symbol[1]: longer than 128 characters (row 101" in text
    assert "chunk[3].day[2]: 20261340 is not a date" in text
    with pytest.raises(ReturnsInputError, match=r"\.\.\. and 15 more"):
        validate_chunk(["A"] * 20, [20260105] * 20, [-2.0] * 20, 0)


def test_parse_day() -> None:
    assert parse_day("2026-01-31") == 20260131 == parse_day(" 20260131 ")
    for bad in ("20260231", "2026131", "abc", "18991231"):
        with pytest.raises(ValueError):
            parse_day(bad)


def test_csv_chunks_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("ret,symbol,day\n0.01,A,20260105\n\n0.02,B,2026-01-05\n-0.5,C,20260106\n")
    chunks = list(read_csv_chunks(str(path), chunk_rows=2))
    assert [list(c.symbol) for c in chunks] == [["A", "B"], ["C"]]
    assert list(chunks[0].day) == [20260105, 20260105] and list(chunks[1].ret) == [-0.5]
    path.write_text("symbol,day,ret\nA,20260105,0.01\nB,20260105,-1.5\n")
    with pytest.raises(ReturnsFileError, match=r"line 3: ret -1.5 is outside"):
        list(read_csv_chunks(str(path)))
    path.write_text("symbol,day,ret\nA,20260105\n")
    with pytest.raises(ReturnsFileError, match="line 2: expected 3 fields"):
        list(read_csv_chunks(str(path)))


def test_demo_data_is_correlated_and_deterministic() -> None:
    rows = list(demo_rows(40, 120, seed=3, last=dt.date(2026, 11, 27)))
    assert rows == list(demo_rows(40, 120, seed=3, last=dt.date(2026, 11, 27)))
    assert len(rows) == 40 * 120 and rows[-1][1] == 20261127
    m = np.array([r[2] for r in rows]).reshape(120, 40).T
    vol = m.std(axis=1, ddof=1)
    assert ((vol > 0.005) & (vol < 0.06)).all()
    corr = np.corrcoef(m)
    assert corr[np.triu_indices(40, 1)].mean() > 0.1  # a market factor: positive on average
    out = io.StringIO()
    assert write_demo_csv(out, 3, 2) == 6 and out.getvalue().startswith("symbol,day,ret\nSYM0000,")
