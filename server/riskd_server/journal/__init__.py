"""The local journal: every state-changing input appended before its reply (see writer, reader)."""

from .format import Located, Record
from .reader import JournalDamage, read, verify
from .writer import FSYNC_POLICIES, Journal, JournalFull, JournalStats, Opened, repair_damage

__all__ = [
    "FSYNC_POLICIES",
    "Journal",
    "JournalDamage",
    "JournalFull",
    "JournalStats",
    "Located",
    "Opened",
    "Record",
    "read",
    "repair_damage",
    "verify",
]
