"""The node's data directory and its config file (node.toml), written by `rarenet-node init`.

D/node.toml              site id, coordinator address, country, TLS, disclosure policy
D/keys/site.key          the site's Ed25519 signing key (mode 0600)
D/keys/pseudonym.secret  the site-local secret for patient-id hashing (mode 0600)
D/node.db                results, quarantine, outbox, receipts
D/standard.toml          the testing standard last fetched from the coordinator

The directory is 0700 and every file the node writes in it 0600, whatever the umask
(`private_dir`, `write_private`; node/store.py creates node.db the same way).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import ConfigError
from protos import keys, site_ids
from protos.errors import KeyFileError
from protos.net import is_loopback

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
# Every released count also gets bounded, consistent cell-key noise (docs/privacy.md); always on.
# The period kinds this node releases ("month", "quarter", "year"). A period that overlaps one
# already released of another kind is refused: months and their quarter would be subtractable.
period_kinds = ["quarter"]
# A released period is signed again only when the results of at least this many patients moved a
# released figure since (a smaller revision would release their results as a difference).
revision_min_changes = 10
# The finest VAF bin edges (percent) a testing standard may ask for; its edges must be a subset.
vaf_edges = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0001]
# The histologies of the panel-coverage population; a standard may add histologies (coarser),
# never leave one out (that would isolate it).
panel_histologies = ["adenocarcinoma", "large_cell", "sarcomatoid", "nos", "other"]

[retention]
# Days a LIMS export is kept in watch_dir/processed/ after a successful ingest (0: deleted at
# once; its SHA-256 and ingest report are kept).
raw_export_days = 0

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


DEFAULT_VAF_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0001)
DEFAULT_PANEL_HISTOLOGIES = ("adenocarcinoma", "large_cell", "sarcomatoid", "nos", "other")
PERIOD_KINDS = ("month", "quarter", "year")
# Keys of earlier versions, accepted so that their node.toml still loads; see _deprecated_dp.
_DP_KEYS = ("differential_privacy", "epsilon_per_period", "epsilon_total")


@dataclass
class Disclosure:
    min_denominator: int = 10
    small_stratum_action: str = "merge"
    small_count_suppression: bool = False
    small_count_threshold: int = 5
    period_kinds: tuple[str, ...] = ("quarter",)
    revision_min_changes: int = 10
    vaf_edges: tuple[float, ...] = DEFAULT_VAF_EDGES
    panel_histologies: tuple[str, ...] = DEFAULT_PANEL_HISTOLOGIES


@dataclass
class Retention:
    raw_export_days: float = 0


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
    retention: Retention = field(default_factory=Retention)
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
    problem = site_ids.problem(site_id)
    if problem:
        raise ConfigError(problem)
    if insecure and not is_loopback(coordinator):
        raise ConfigError(
            f"--insecure (plain-text gRPC) is allowed only for a loopback coordinator, not"
            f" {coordinator}; give the network CA certificate with --ca-file instead"
        )
    config_path = data_dir / "node.toml"
    if config_path.exists():
        raise ConfigError(f"{data_dir} is already initialised; use another --data-dir")
    private_dir(data_dir)
    private_dir(data_dir / "keys")
    write_private(
        config_path,
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
    )
    keys.save_private(keys.generate(), data_dir / "keys" / "site.key")
    fd = os.open(
        data_dir / "keys" / "pseudonym.secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
    )
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return load(data_dir)


def private_dir(path: Path) -> Path:
    """A directory only the node's user can enter (0700), whatever the umask."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, content: str | bytes) -> None:
    """Write a file only the node's user can read (0600), whatever the umask."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)


def _disclosure(path: Path, section: dict) -> Disclosure:
    """The [disclosure] section, checked. Differential privacy is no longer offered (it noised
    the strata only, with a data-dependent scale): `differential_privacy = true` is refused with
    what to do; the keys as written by earlier versions' `init` (false) still load."""
    if section.get("differential_privacy", False):
        raise ConfigError(
            f"{path}: differential_privacy is no longer offered: it noised only the strata, with a "
            "noise scale computed from the data. Every released number now gets bounded cell-key "
            "noise instead (docs/privacy.md). Remove differential_privacy, epsilon_per_period and "
            "epsilon_total from [disclosure]"
        )
    for key in _DP_KEYS:
        section.pop(key, None)
    for key in ("period_kinds", "vaf_edges", "panel_histologies"):
        if key in section:
            if not isinstance(section[key], list):
                raise ConfigError(f"{path}: [disclosure] {key} must be a list")
            section[key] = tuple(section[key])
    disclosure = Disclosure(**section)
    unknown = set(disclosure.period_kinds) - set(PERIOD_KINDS)
    if unknown or not disclosure.period_kinds:
        raise ConfigError(
            f'{path}: [disclosure] period_kinds must name one or more of "month", "quarter", '
            f'"year" (not {sorted(unknown)})'
        )
    edges = disclosure.vaf_edges
    if len(edges) < 2 or len(edges) > 33 or list(edges) != sorted(set(edges)):
        raise ConfigError(
            f"{path}: [disclosure] vaf_edges must be 2 to 33 increasing numbers (percent)"
        )
    if disclosure.revision_min_changes < 1:
        raise ConfigError(f"{path}: [disclosure] revision_min_changes must be at least 1")
    return disclosure


def _abs(path: str) -> str:
    return str(Path(path).resolve()).replace("\\", "/") if path else ""


# Every key node.toml may hold, with its type: a wrong type or an unknown key is refused with a
# message naming it (deploy/config/node.example.toml explains each).
_STR, _BOOL, _INT, _NUMBER = "a string", "true or false", "a whole number", "a number"
_LIST = "a list"
SCHEMA: dict[str, dict[str, str]] = {
    "site": {"id": _STR, "country": _STR, "subdivision": _STR},
    "coordinator": {
        "address": _STR,
        "insecure": _BOOL,
        "ca_file": _STR,
        "cert_file": _STR,
        "key_file": _STR,
        "timeout_seconds": _NUMBER,
    },
    "disclosure": {
        "min_denominator": _INT,
        "small_stratum_action": _STR,
        "small_count_suppression": _BOOL,
        "small_count_threshold": _INT,
        "differential_privacy": _BOOL,
        "epsilon_per_period": _NUMBER,
        "epsilon_total": _NUMBER,
        "period_kinds": _LIST,
        "revision_min_changes": _INT,
        "vaf_edges": _LIST,
        "panel_histologies": _LIST,
    },
    "retention": {"raw_export_days": _NUMBER},
    "summary": {"period": _STR},
    "report": {"language": _STR, "testing_directory": _BOOL},
    "daemon": {
        "watch_dir": _STR,
        "mapping": _STR,
        "watch_every_seconds": _NUMBER,
        "summary_cron": _STR,
        "send_every_seconds": _NUMBER,
        "retry_base_seconds": _NUMBER,
        "retry_max_seconds": _NUMBER,
    },
}
REQUIRED = (("site", "id"), ("coordinator", "address"))
_EXAMPLE = "compare with deploy/config/node.example.toml"


def _typed(value: object, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _LIST:
        return isinstance(value, list)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_types(data: dict, path: Path) -> None:
    """ConfigError naming the first unknown section or key, or key of the wrong type."""
    for section, values in data.items():
        keys_ = SCHEMA.get(section)
        if keys_ is None:
            raise ConfigError(
                f"{path}: unknown section [{section}] (sections: {', '.join(SCHEMA)}); {_EXAMPLE}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] must be a section (a table); {_EXAMPLE}")
        for key, value in values.items():
            kind = keys_.get(key)
            if kind is None:
                known = ", ".join(k for k in keys_ if k not in _DP_KEYS)
                raise ConfigError(
                    f"{path}: unknown key {key!r} in [{section}] (known: {known}). "
                    f"A misspelt key would be silently ignored, so it is refused; {_EXAMPLE}"
                )
            if not _typed(value, kind):
                raise ConfigError(
                    f"{path}: [{section}] {key} must be {kind}, not {value!r}; {_EXAMPLE}"
                )
    for section, key in REQUIRED:
        if key not in data.get(section, {}):
            raise ConfigError(f"{path}: [{section}] {key} is required; {_EXAMPLE}")


def _check_values(config: NodeConfig, path: Path) -> None:
    from apscheduler.triggers.cron import CronTrigger

    disclosure, daemon = config.disclosure, config.daemon
    problem = site_ids.problem(config.site_id)
    if problem:
        raise ConfigError(f"{path}: [site] id: {problem}")
    if disclosure.small_stratum_action not in ("merge", "withhold"):
        raise ConfigError(f'{path}: small_stratum_action must be "merge" or "withhold"')
    if disclosure.min_denominator < 1:
        raise ConfigError(f"{path}: min_denominator must be at least 1")
    if disclosure.small_count_threshold < 1:
        raise ConfigError(f"{path}: small_count_threshold must be at least 1")
    if config.period_kind not in ("month", "quarter", "year"):
        raise ConfigError(f'{path}: [summary] period must be "month", "quarter" or "year"')
    if config.report_language not in ("zh", "en"):
        raise ConfigError(f'{path}: [report] language must be "zh" or "en"')
    if config.timeout_seconds <= 0:
        raise ConfigError(f"{path}: [coordinator] timeout_seconds must be more than 0")
    for name in (
        "watch_every_seconds",
        "send_every_seconds",
        "retry_base_seconds",
        "retry_max_seconds",
    ):
        if getattr(daemon, name) <= 0:
            raise ConfigError(f"{path}: [daemon] {name} must be more than 0 seconds")
    try:
        CronTrigger.from_crontab(daemon.summary_cron)
    except ValueError as exc:
        raise ConfigError(
            f"{path}: [daemon] summary_cron {daemon.summary_cron!r} is not a crontab line "
            f'(minute hour day month weekday, e.g. "0 3 * * *"): {exc}'
        ) from exc


def load(data_dir: Path) -> NodeConfig:
    path = data_dir / "node.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{data_dir} is not a node data directory; run `rarenet-node init --data-dir {data_dir}` first"
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    check_types(data, path)
    site, coord = data["site"], data["coordinator"]
    disclosure = _disclosure(path, dict(data.get("disclosure", {})))
    config = NodeConfig(
        data_dir=data_dir,
        site_id=site["id"],
        country=site.get("country", "CN"),
        subdivision=site.get("subdivision", ""),
        coordinator=coord["address"],
        insecure=coord.get("insecure", False),
        ca_file=coord.get("ca_file", ""),
        cert_file=coord.get("cert_file", ""),
        key_file=coord.get("key_file", ""),
        timeout_seconds=float(coord.get("timeout_seconds", 15)),
        period_kind=data.get("summary", {}).get("period", "quarter"),
        disclosure=disclosure,
        daemon=Daemon(**data.get("daemon", {})),
        retention=Retention(**data.get("retention", {})),
        report_language=data.get("report", {}).get("language", "en"),
        testing_directory=data.get("report", {}).get("testing_directory", False),
    )
    _check_values(config, path)
    if config.period_kind not in disclosure.period_kinds:
        raise ConfigError(
            f"{path}: [summary] period is {config.period_kind!r} but [disclosure] period_kinds "
            f"releases only {list(disclosure.period_kinds)}; make them agree"
        )
    if config.retention.raw_export_days < 0:
        raise ConfigError(f"{path}: [retention] raw_export_days must be 0 or more")
    if not config.daemon.watch_dir:
        config.daemon.watch_dir = str(data_dir / "inbox")
    return config
