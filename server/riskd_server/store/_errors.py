"""Which write failures are the data's fault (pure).

A *data error* is one that writing the same rows again will repeat, and that a subset of the rows
causes: the write-behind then splits the flush to find those rows and dead-letters them. Every
other failure is retried as it always was (breaker, backoff, nothing dropped), because retrying
is what fixes it, or because an operator must fix the schema and dead-lettering every row would
empty the tables of state they should hold.

Data errors, by SQLSTATE class (the class, not psycopg's exception class, decides: psycopg maps
54000 to OperationalError):

- 22 data exception: value out of range, invalid text, datetime overflow, NUL in text, ...
- 23 integrity constraint violation: CHECK, NOT NULL, UNIQUE, foreign key;
- 54 program limit exceeded: e.g. an id too long for its btree index entry;

plus psycopg's client-side DataError (no SQLSTATE: e.g. a NUL in a parameter) and
UnicodeError (a string UTF-8 cannot encode, met while building a COPY stream).

Retried: everything else, notably 08 connection exceptions, 40 transaction rollback (40001
serialization failure, 40P01 deadlock), 53 insufficient resources (disk full, out of memory,
too many connections), 55 object not in prerequisite state (55P03 lock not available),
57 operator intervention (57014 statement timeout/cancel, 57P01 admin shutdown), 58 system
errors, XX internal errors, timeouts, pool timeouts, an open breaker, OSError; and the
statement's own faults that no row causes (42 undefined table/column, insufficient privilege;
0A; 25), which need an operator and are logged at ERROR.
"""

from __future__ import annotations

import psycopg

DATA_CLASSES = frozenset({"22", "23", "54"})
# Not row-caused and not transient: the schema or the privileges are wrong; an operator must act.
OPERATOR_CLASSES = frozenset({"42", "0A", "25", "2B", "3D", "3F", "F0", "XX"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE PostgreSQL sent with ``exc``, or None (not from the server)."""
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate or exc.diag.sqlstate
    return None


def is_data_error(exc: BaseException) -> bool:
    """True when the rows themselves are refused, so writing them again would fail again."""
    if isinstance(exc, UnicodeError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = sqlstate(exc)
    if state is None:
        return isinstance(exc, psycopg.DataError)  # raised by psycopg before sending
    return state[:2] in DATA_CLASSES


def needs_operator(exc: BaseException) -> bool:
    """A failure that retrying will not end and that no row causes (logged louder)."""
    state = sqlstate(exc)
    return state is not None and state[:2] in OPERATOR_CLASSES


def describe(exc: BaseException) -> str:
    """One line for logs and the dead letter: the exception type, SQLSTATE and message."""
    state = sqlstate(exc)
    text = " | ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return f"{type(exc).__name__}{f' [{state}]' if state else ''}: {text}"
