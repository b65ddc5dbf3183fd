"""The coordinator's data directory.

D/coordinator.db        sites, keys, ledger, summaries, tree heads (SQLite, WAL)
D/keys/coordinator.key  the coordinator's Ed25519 key: receipts, tree heads, reports (0600)
D/standard.toml         the testing standard in force (a copy of the default at init)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from coordinator.errors import CoordinatorError
from coordinator.standards import DEFAULT_STANDARD
from protos import keys
from protos.errors import KeyFileError


class SetupError(CoordinatorError):
    """The data directory, the configuration or a file it names is missing or not valid."""


class AlreadyServing(SetupError):
    """Another coordinator already serves this data directory (one ledger has one writer)."""


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
            raise SetupError(
                f"{exc} (is {self.path} a coordinator data directory? run `rarenet-coordinator init`)"
            ) from exc

    def check(self) -> DataDir:
        if not self.db.exists():
            raise SetupError(
                f"{self.path} is not a coordinator data directory; run "
                f"`rarenet-coordinator init --data-dir {self.path}` first"
            )
        return self


@dataclass
class ServeConfig:
    """`rarenet-coordinator serve --config FILE` (see deploy/config/coordinator.example.toml)."""

    data_dir: Path
    listen: str = "127.0.0.1:50051"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    insecure: bool = False
    standard: Path | None = None
    workers: int = 16
    report_period: str = "quarter"
    report_every_seconds: float = 300
    site_rate: float = 60.0  # submissions a site may send a minute after a burst; 0: no limit


def load_serve_config(path: Path) -> ServeConfig:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SetupError(f"no config file at {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"{path}: {exc}") from exc
    server, tls, reports = data.get("server", {}), data.get("tls", {}), data.get("reports", {})
    unknown = set(data) - {"server", "tls", "reports"}
    if unknown or "data_dir" not in server:
        raise SetupError(
            f"{path}: needs [server] data_dir; sections are server, tls, reports "
            f"(unknown: {sorted(unknown)}); see deploy/config/coordinator.example.toml"
        )
    optional = lambda v: Path(v) if v else None  # noqa: E731
    return ServeConfig(
        data_dir=Path(server["data_dir"]),
        listen=server.get("listen", "127.0.0.1:50051"),
        workers=int(server.get("workers", 16)),
        site_rate=float(server.get("site_rate", 60.0)),
        standard=optional(server.get("standard")),
        tls_cert=optional(tls.get("cert")),
        tls_key=optional(tls.get("key")),
        client_ca=optional(tls.get("client_ca")),
        insecure=bool(tls.get("insecure", False)),
        report_period=reports.get("period", "quarter"),
        report_every_seconds=float(reports.get("every_seconds", 300)),
    )


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
