"""One schema-version and migration policy for the node's and the coordinator's SQLite databases.

- A database's layout is its `PRAGMA user_version`; each side declares its current `Layout`.
- The layout's `schema` is written only with `CREATE ... IF NOT EXISTS` and runs at every open,
  so a new table, index or view needs no migration.
- Anything else (a new column, a changed or dropped table) raises the version and adds a
  `Migration` to the end of the list. Migrations run in order, each in its own transaction with
  the version it produces, so an upgrade interrupted half way resumes at the next open.
- A database older than the first migration can start from, or newer than this software, is
  refused with advice; nothing is changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Migration:
    version: int  # the layout it produces, one more than the one it starts from
    change: str  # what it changes, in a few words
    run: Callable[[sqlite3.Connection], None]  # statements only: it runs inside a transaction


@dataclass(frozen=True)
class Layout:
    what: str  # "node database", in messages
    version: int
    schema: str
    migrations: tuple[Migration, ...] = ()
    too_old: str = "start a new data directory"  # advice for a layout no migration starts from

    def oldest(self) -> int:
        """The oldest layout this software can bring up to date."""
        return self.migrations[0].version - 1 if self.migrations else self.version


def open_layout(
    conn: sqlite3.Connection, path: Path, layout: Layout, error: type[Exception]
) -> list[Migration]:
    """Bring the database on conn (opened with isolation_level=None) to the current layout;
    returns the migrations run. Raises `error` for a layout it cannot read."""
    versions = [m.version for m in layout.migrations]
    if versions != list(range(layout.oldest() + 1, layout.version + 1)):
        raise ValueError(f"{layout.what}: migrations {versions} do not lead to {layout.version}")
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    empty = not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone()
    if found > layout.version:
        raise error(
            f"{path} has {layout.what} layout {found}, made by a newer version of rarenet; this "
            f"version reads layouts up to {layout.version}. Upgrade rarenet (or restore a backup)."
        )
    if not empty and found < layout.oldest():
        raise error(
            f"{path} has {layout.what} layout {found}, made by an earlier development version of "
            f"rarenet; this version reads layout {layout.version}. {layout.too_old[:1].upper()}"
            f"{layout.too_old[1:]}."
        )
    ran = []
    if not empty:
        for migration in layout.migrations:
            if migration.version > found:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    migration.run(conn)
                    conn.execute(f"PRAGMA user_version = {migration.version:d}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                ran.append(migration)
    conn.executescript(layout.schema)
    if found != layout.version:
        conn.execute(f"PRAGMA user_version = {layout.version:d}")
    return ran
