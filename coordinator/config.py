"""The coordinator's data directory.

    D/coordinator.db        sites, keys, ledger, summaries, tree heads (SQLite, WAL)
    D/keys/coordinator.key  the coordinator's Ed25519 key: receipts, tree heads, reports (0600)
    D/standard.toml         the testing standard in force (a copy of the default at init)
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from protos import keys
from protos.errors import KeyFileError
from coordinator.errors import CoordinatorError
from coordinator.standards import DEFAULT_STANDARD


class SetupError(CoordinatorError):
    pass


@dataclass(frozen=True)
class DataDir:
    path: Path

    @property
    def db(self) -> Path:
        return self.path / "coordinator.db"

    @property
    def key(self) -> Path:
        return self.path / "keys" / "coordinator.key"

    @property
    def standard(self) -> Path:
        return self.path / "standard.toml"

    def signing_key(self):
        try:
            return keys.load_private(self.key)
        except KeyFileError as exc:
            raise SetupError(f"{exc} (is {self.path} a coordinator data directory? run `rarenet-coordinator init`)") from exc

    def check(self) -> "DataDir":
        if not self.db.exists():
            raise SetupError(f"{self.path} is not a coordinator data directory; run "
                             f"`rarenet-coordinator init --data-dir {self.path}` first")
        return self


def init(path: Path) -> DataDir:
    data = DataDir(path)
    if data.db.exists():
        raise SetupError(f"{path} is already initialised")
    (path / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
    keys.save_private(keys.generate(), data.key)
    shutil.copyfile(DEFAULT_STANDARD, data.standard)
    from coordinator import store

    store.connect(data.db).close()
    return data
