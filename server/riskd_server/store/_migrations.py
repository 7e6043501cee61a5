"""Schema migrations: numbered SQL files applied once each, in order, by whichever server gets there first."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection

log = logging.getLogger("riskd.store")

# pg_advisory_xact_lock key: two servers starting on one database apply migrations one at a time.
MIGRATION_LOCK = 0x7269736B64  # "riskd"

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # file name without .sql, e.g. "001_init"; applied in sort order
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations() -> tuple[Migration, ...]:
    """The migrations shipped in riskd_server/migrations, in the order they must run."""
    folder = resources.files("riskd_server").joinpath("migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return tuple(Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files)


async def apply_migrations(
    conn: AsyncConnection, migrations: tuple[Migration, ...] | None = None
) -> list[str]:
    """Apply the missing migrations, each in its own transaction; returns the versions applied."""
    applied: list[str] = []
    for mig in bundled_migrations() if migrations is None else migrations:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(_BOOTSTRAP)
            cur = await conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s", (mig.version,)
            )
            row = await cur.fetchone()
            if row is not None:
                if row[0] != mig.checksum:
                    log.warning("migration %s changed since it was applied; not re-applying", mig.version)
                continue
            await conn.execute(mig.sql.encode())  # no parameters: the whole script in one round trip
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (mig.version, mig.checksum),
            )
            log.info("applied migration %s", mig.version)
            applied.append(mig.version)
    return applied
