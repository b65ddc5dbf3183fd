"""`rarenet-node run`: the node unattended. Three jobs on an APScheduler scheduler whose job store is
the node's own SQLite (a restart keeps the schedule):

- watch: ingest every LIMS export dropped in the watch folder; after a successful ingest the export
  (names, MRNs) is deleted, or kept in processed/ for [retention] raw_export_days and then deleted,
  and its ingest report (with the file's SHA-256) is kept; a file that could not be ingested goes
  to failed/ with a .report.json saying why. Folders 0700, files 0600; the log names files and
  counts, never a row's ids;
- summarise: on the configured cron, sign a summary for each recently closed period into the
  outbox (a period whose data did not change is not signed again; a revision that would release
  only a few results, or a re-release under a new standard, is held: node/release.py);
- send: send what the outbox holds and is due, keeping each envelope until its receipt verifies;
  a failed send backs off exponentially with jitter.

Jobs are module functions taking the data directory, so they can be stored and run again after a
restart. SIGTERM or SIGINT stops the scheduler after the running job finishes.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from node import alarms, send, store, witness
from node import config as node_config
from node import mapping as node_mapping
from node.client import CoordinatorClient, RpcFailure
from node.config import private_dir, write_private
from node.enroll import fetch_standard
from node.errors import LedgerAlarm, NodeError, PeriodNotReady
from node.ingest import ingest_file
from node.pseudonym import Pseudonymiser
from node.standard import load_cached
from protos.errors import ContractError
from protos.lockfile import AlreadyLocked, DirectoryLock
from protos.periods import containing

log = logging.getLogger("rarenet.node")
_job_lock = threading.Lock()  # one job at a time touches the database


def _job(func):
    """A failing job logs one line saying what to do and runs again next time; no traceback. A
    ledger alarm is CRITICAL, and kept (node/alarms.py): it stands until it is resolved."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LedgerAlarm as exc:
            log.critical("%s: LEDGER ALARM: %s", func.__name__, exc)
            return None
        except (NodeError, ContractError) as exc:
            log.error("%s: %s", func.__name__, exc)
            return None

    return wrapper


def _expire_raw_exports(processed: Path, days: float) -> None:
    """Delete the exports kept in processed/ longer than the policy says (their reports stay)."""
    cutoff = time.time() - days * 86400
    for kept in processed.iterdir():
        if kept.is_file() and not kept.name.endswith(".report.json"):
            if kept.stat().st_mtime < cutoff or days <= 0:
                kept.unlink()
                log.info("deleted %s: kept for [retention] raw_export_days", kept.name)


EXPORTS = (".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xlsm")


@_job
def watch(data_dir: str) -> dict:
    """Ingest the exports waiting in the watch folder; returns {file: "processed" | "failed"}."""
    with _job_lock:
        cfg = node_config.load(Path(data_dir))
        folder = Path(cfg.daemon.watch_dir)
        private_dir(folder / "processed")
        private_dir(folder / "failed")
        _expire_raw_exports(folder / "processed", cfg.retention.raw_export_days)
        conn = store.connect(cfg.db_path)
        done = {}
        try:
            rules = node_mapping.load(Path(cfg.daemon.mapping) if cfg.daemon.mapping else None)
            pseudonymise = Pseudonymiser(cfg.pseudonym_secret())
            for path in sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXPORTS
            ):
                stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
                with path.open("rb") as fh:
                    sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
                try:
                    result = ingest_file(conn, path, pseudonymise, rules)
                    report, outcome = {**result.to_dict(), "sha256": sha256}, "processed"
                    log.info(
                        "ingested %s: %d rows, %d accepted, %d duplicates, %d quarantined",
                        path.name,
                        result.rows,
                        result.accepted,
                        result.duplicates,
                        result.quarantined,
                    )
                except (NodeError, ContractError) as exc:
                    report, outcome = {"file": path.name, "error": str(exc)}, "failed"
                    log.error("could not ingest %s: %s", path.name, exc)
                target = folder / outcome / f"{stamp}-{path.name}"
                if outcome == "processed" and cfg.retention.raw_export_days <= 0:
                    path.unlink()
                    report["raw_export"] = "deleted after ingest ([retention] raw_export_days = 0)"
                else:
                    shutil.move(str(path), target)
                    os.chmod(target, 0o600)
                write_private(
                    target.with_name(target.name + ".report.json"),
                    json.dumps(report, indent=2, ensure_ascii=False),
                )
                done[path.name] = outcome
        finally:
            conn.close()
        return done


@_job
def summarise(data_dir: str, today: str | None = None) -> list[int]:
    """Sign summaries for the last two closed periods (the second catches late results); returns
    the new sequence numbers."""
    with _job_lock:
        cfg = node_config.load(Path(data_dir))
        conn = store.connect(cfg.db_path)
        try:
            day = dt.date.fromisoformat(today) if today else dt.date.today()
            closed = containing(day, cfg.period_kind).previous()
            try:
                with CoordinatorClient(cfg) as client:
                    standard = fetch_standard(cfg, client)
            except NodeError as exc:
                log.warning("standard not refreshed (%s); using the cached one", exc)
                standard = load_cached(cfg.standard_path)
            made = []
            for period in (closed.previous(), closed):
                try:
                    queued = send.queue_summary(conn, cfg, standard, period, day)
                except PeriodNotReady as exc:
                    log.info("%s", exc)
                    continue
                if queued.held:
                    log.info("held, nothing signed: %s", queued.held)
                if queued.sequence is not None:
                    log.info(
                        "signed the %s summary as sequence %d into the outbox",
                        period,
                        queued.sequence,
                    )
                    made.append(queued.sequence)
            return made
        finally:
            conn.close()


@_job
def deliver(data_dir: str) -> send.FlushReport:
    """Send the outbox's due envelopes."""
    with _job_lock:
        cfg = node_config.load(Path(data_dir))
        conn = store.connect(cfg.db_path)
        try:
            standing = alarms.standing(conn)
            if standing:  # loud on every run, and nothing more is fed to a log that failed
                for alarm in standing:
                    log.critical("%s", alarms.describe(alarm))
                return send.FlushReport(pending=len(send.outbox.pending(conn)))
            with CoordinatorClient(cfg) as client:
                report = send.flush(conn, cfg, client, due_only=True)
                if report.witnessed is None and report.witness_error is None:
                    try:
                        report.witnessed = witness.step(conn, cfg, client)
                    except RpcFailure as exc:
                        report.witness_error = str(exc)
            if report.witness_error:
                log.warning(
                    "witness round not done, tried again next time: %s", report.witness_error
                )
            if report.witnessed:
                log.info(
                    "cosigned checkpoint %d as a witness; also cosigned by %s",
                    report.witnessed.tree_size,
                    ", ".join(report.witnessed.cosigners) or "no other site yet",
                )
            for sequence, leaf in report.delivered:
                log.info("delivered sequence %d (ledger leaf %d), receipt verified", sequence, leaf)
            for sequence, error in report.failed:
                log.warning("sequence %d not delivered, will retry: %s", sequence, error)
            return report
        finally:
            conn.close()


def scheduler_for(cfg: node_config.NodeConfig) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(
                url=f"sqlite:///{cfg.db_path}", tablename="scheduler_jobs"
            )
        },
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    data_dir = str(cfg.data_dir)
    daemon = cfg.daemon
    scheduler.add_job(
        watch,
        IntervalTrigger(seconds=daemon.watch_every_seconds),
        args=[data_dir],
        id="watch",
        name="ingest the watch folder",
        replace_existing=True,
    )
    scheduler.add_job(
        summarise,
        CronTrigger.from_crontab(daemon.summary_cron),
        args=[data_dir],
        id="summarise",
        name="sign summaries of closed periods",
        replace_existing=True,
    )
    scheduler.add_job(
        deliver,
        IntervalTrigger(seconds=daemon.send_every_seconds),
        args=[data_dir],
        id="send",
        name="send the outbox",
        replace_existing=True,
    )
    return scheduler


def run(data_dir: Path) -> None:
    cfg = node_config.load(data_dir.resolve())
    try:
        lock = DirectoryLock(cfg.data_dir / "run.lock").acquire()
    except AlreadyLocked:
        raise NodeError(f"`rarenet-node run` is already running on {cfg.data_dir}") from None
    try:
        _run(cfg)
    finally:
        lock.release()


def _run(cfg: node_config.NodeConfig) -> None:
    store.connect(cfg.db_path).close()
    private_dir(Path(cfg.daemon.watch_dir))
    scheduler = scheduler_for(cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    log.info(
        "node %s running: watching %s, sending to %s",
        cfg.site_id,
        cfg.daemon.watch_dir,
        cfg.coordinator,
    )
    for job in scheduler.get_jobs():
        log.info("job %s next at %s", job.id, job.next_run_time)
    try:
        for job_id in ("watch", "summarise", "send"):  # catch up at once after a (re)start
            scheduler.modify_job(job_id, next_run_time=dt.datetime.now(dt.UTC))
        stop.wait()
    finally:
        log.info("stopping: letting the running job finish")
        scheduler.shutdown(wait=True)
        log.info("stopped")


def next_jobs(db_path: Path) -> list[dict]:
    """The scheduled jobs as the job store holds them (for `status`)."""
    conn = store.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT id, next_run_time FROM scheduler_jobs ORDER BY next_run_time"
        ).fetchall()
    except Exception:  # noqa: BLE001 - no table until the daemon first ran
        return []
    finally:
        conn.close()
    return [
        {
            "job": job_id,
            "next_run": dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")
            if t
            else None,
        }
        for job_id, t in rows
    ]


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
