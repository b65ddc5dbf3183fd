"""The node's data directory and its config file (node.toml), written by `rarenet-node init`.

D/node.toml              site id, coordinator address, country, TLS, disclosure policy
D/keys/site.key          the site's Ed25519 signing key (mode 0600)
D/keys/pseudonym.secret  the site-local secret for patient-id hashing (mode 0600)
D/node.db                results, quarantine, outbox, receipts
D/standard.toml          the testing standard last fetched from the coordinator
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import ConfigError
from protos import keys
from protos.errors import KeyFileError

CONFIG_TEMPLATE = """\
# rarenet node configuration. Every option is explained in deploy/config/node.example.toml.
[site]
id = "{site_id}"
# ISO country code (and optional subdivision) whose public holidays are not working days.
country = "{country}"
subdivision = ""

[coordinator]
address = "{coordinator}"
# TLS: the network CA that signed the coordinator's certificate, and this site's client
# certificate and key when the coordinator requires mTLS. insecure = true only on loopback.
insecure = {insecure}
ca_file = "{ca_file}"
cert_file = "{cert_file}"
key_file = "{key_file}"
timeout_seconds = 15

[disclosure]
# A stratum with fewer tests than this is merged into a coarser stratum (or withheld).
min_denominator = 10
small_stratum_action = "merge"     # "merge" or "withhold"
# Suppress positive/negative/failed cells below the threshold (with complementary suppression).
small_count_suppression = false
small_count_threshold = 5
# Differential privacy: discrete noise on released counts, within a total budget.
differential_privacy = false
epsilon_per_period = 1.0
epsilon_total = 8.0

[summary]
period = "quarter"                 # "month", "quarter" or "year"

[report]
# Language of this lab's own report (`rarenet-node benchmark --html/--pdf`): "zh" or "en".
language = "en"
# List this lab in the network's testing-assistance directory: which methods it runs for each rare
# driver, with its turnaround and failure rates, so other labs can send it samples. Opt-in.
testing_directory = false

[daemon]
# `rarenet-node run`: LIMS exports dropped in watch_dir are ingested, then moved to
# watch_dir/processed/ (or watch_dir/failed/, with a .report.json beside them).
watch_dir = "{data_dir}/inbox"
mapping = ""                       # a mapping TOML for the exports, if they need one
watch_every_seconds = 60
# When closed periods are summarised (crontab: minute hour day month weekday, local time).
summary_cron = "0 3 * * *"
# How often the outbox is tried; failed sends back off exponentially with jitter from
# retry_base_seconds up to retry_max_seconds, for as long as it takes.
send_every_seconds = 60
retry_base_seconds = 30
retry_max_seconds = 21600
"""


@dataclass
class Disclosure:
    min_denominator: int = 10
    small_stratum_action: str = "merge"
    small_count_suppression: bool = False
    small_count_threshold: int = 5
    differential_privacy: bool = False
    epsilon_per_period: float = 1.0
    epsilon_total: float = 8.0


@dataclass
class Daemon:
    watch_dir: str = ""
    mapping: str = ""
    watch_every_seconds: float = 60
    summary_cron: str = "0 3 * * *"
    send_every_seconds: float = 60
    retry_base_seconds: float = 30
    retry_max_seconds: float = 21600


@dataclass
class NodeConfig:
    data_dir: Path
    site_id: str
    coordinator: str
    country: str = "CN"
    subdivision: str = ""
    insecure: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    timeout_seconds: float = 15.0
    period_kind: str = "quarter"
    disclosure: Disclosure = field(default_factory=Disclosure)
    daemon: Daemon = field(default_factory=Daemon)
    report_language: str = "en"
    testing_directory: bool = False

    @property
    def db_path(self) -> Path:
        return self.data_dir / "node.db"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "keys" / "site.key"

    @property
    def secret_path(self) -> Path:
        return self.data_dir / "keys" / "pseudonym.secret"

    @property
    def standard_path(self) -> Path:
        return self.data_dir / "standard.toml"

    def signing_key(self):
        try:
            return keys.load_private(self.key_path)
        except KeyFileError as exc:
            raise ConfigError(str(exc)) from exc

    def pseudonym_secret(self) -> bytes:
        try:
            return self.secret_path.read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(
                f"no pseudonymisation secret at {self.secret_path}; run `rarenet-node init`"
            ) from exc


def init(
    data_dir: Path,
    site_id: str,
    coordinator: str,
    country: str = "CN",
    insecure: bool = False,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
) -> NodeConfig:
    """Create the data directory, config, signing key and pseudonymisation secret."""
    if not site_id or not all(c.isalnum() or c in "-_." for c in site_id):
        raise ConfigError(f"site id {site_id!r} may hold only letters, digits, '-', '_' and '.'")
    config_path = data_dir / "node.toml"
    if config_path.exists():
        raise ConfigError(f"{data_dir} is already initialised; use another --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "keys").mkdir(mode=0o700, exist_ok=True)
    config_path.write_text(
        CONFIG_TEMPLATE.format(
            site_id=site_id,
            coordinator=coordinator,
            country=country,
            insecure=str(insecure).lower(),
            ca_file=_abs(ca_file),
            cert_file=_abs(cert_file),
            key_file=_abs(key_file),
            data_dir=_abs(str(data_dir)),
        ),
        encoding="utf-8",
    )
    keys.save_private(keys.generate(), data_dir / "keys" / "site.key")
    fd = os.open(
        data_dir / "keys" / "pseudonym.secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
    )
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return load(data_dir)


def _abs(path: str) -> str:
    return str(Path(path).resolve()).replace("\\", "/") if path else ""


def load(data_dir: Path) -> NodeConfig:
    path = data_dir / "node.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{data_dir} is not a node data directory; run `rarenet-node init --data-dir {data_dir}` first"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        site, coord = data["site"], data["coordinator"]
        disclosure = Disclosure(**data.get("disclosure", {}))
        config = NodeConfig(
            data_dir=data_dir,
            site_id=site["id"],
            country=site.get("country", "CN"),
            subdivision=site.get("subdivision", ""),
            coordinator=coord["address"],
            insecure=bool(coord.get("insecure", False)),
            ca_file=coord.get("ca_file", ""),
            cert_file=coord.get("cert_file", ""),
            key_file=coord.get("key_file", ""),
            timeout_seconds=float(coord.get("timeout_seconds", 15)),
            period_kind=data.get("summary", {}).get("period", "quarter"),
            disclosure=disclosure,
            daemon=Daemon(**data.get("daemon", {})),
            report_language=str(data.get("report", {}).get("language", "en")),
            testing_directory=bool(data.get("report", {}).get("testing_directory", False)),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: missing or unknown option ({exc}); compare with deploy/config/node.example.toml"
        ) from exc
    if disclosure.small_stratum_action not in ("merge", "withhold"):
        raise ConfigError(f'{path}: small_stratum_action must be "merge" or "withhold"')
    if disclosure.min_denominator < 1:
        raise ConfigError(f"{path}: min_denominator must be at least 1")
    if config.period_kind not in ("month", "quarter", "year"):
        raise ConfigError(f'{path}: [summary] period must be "month", "quarter" or "year"')
    if not config.daemon.watch_dir:
        config.daemon.watch_dir = str(data_dir / "inbox")
    return config
