"""Reading a limit's stored versions back (limit_history, written by the write-behind)."""

from __future__ import annotations

from psycopg import AsyncConnection

from .. import changes as ch
from ..limits import Limit

_QUERY = """
SELECT limits_version, who, extract(epoch from ts)::float8, action, deleted, kind, account, symbol,
       threshold, warn_fraction, disabled, description, template, reference_volatility, min_scale
FROM limit_history WHERE limit_id = %s ORDER BY id DESC LIMIT %s
"""


async def limit_history(conn: AsyncConnection, limit_id: str, keep: int) -> list[ch.LimitVersion]:
    """The newest ``keep`` versions of ``limit_id``, newest first."""
    cur = await conn.execute(_QUERY, (limit_id, keep))
    out: list[ch.LimitVersion] = []
    for version, who, ts, action, deleted, *fields in await cur.fetchall():
        limit = None
        if not deleted:
            kind, account, symbol, threshold, warn, disabled, description, template, ref_vol, min_scale = (
                fields
            )
            limit = Limit(
                limit_id=limit_id,
                kind=kind,
                account=account,
                symbol=symbol,
                threshold=threshold,
                warn_fraction=warn,
                disabled=disabled,
                description=description,
                template=template,
                reference_volatility=ref_vol,
                min_scale=min_scale,
            )
        out.append(ch.LimitVersion(limit, int(version), who, float(ts), action))
    return out
