"""Labs witness the coordinator's log: cosigned checkpoints over real gRPC, a split view caught by
the lab it was shown to, and audit bundles that need N labs' cosignatures.

The forking coordinator is real: the honest coordinator's data directory (same key, same ledger
up to the fork) copied and served a second time, so from the fork on there are two trees. Lab A
is shown the second one; the checkpoint the coordinator publishes is the one the other labs
cosigned."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import socket
import zipfile
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from auditor.cli import main as audit_cli
from coordinator.audit_bundle import build
from coordinator.cli import main as coordinator_cli
from coordinator.config import DataDir
from coordinator.server import Running, start
from coordinator.standards import load as load_standard
from node import witness
from node.cli import main as node_cli
from node.client import CoordinatorClient
from node.errors import LedgerAlarm
from node.send import flush, queue_summary
from node.standard import load_cached
from protos import checkpoint, cosignature, keys, note
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import coordinator_pb2_grpc as cgrpc
from tests.conftest import PERIOD, Node


def submit(node: Node, client: CoordinatorClient, csv: Path) -> witness.WitnessReport:
    """Ingest, sign, send; the flush ends with the node's round as a witness."""
    node.ingest(csv)
    queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
    report = flush(node.conn, node.config, client)
    assert report.delivered and report.witness_error is None
    assert report.witnessed is not None
    return report.witnessed


def client_at(node: Node, port: int) -> CoordinatorClient:
    return CoordinatorClient(dataclasses.replace(node.config, coordinator=f"127.0.0.1:{port}"))


def audit(bundle: Path, *args: str) -> tuple[int, str]:
    run = CliRunner().invoke(audit_cli, ["verify", str(bundle), *args])
    return run.exit_code, run.output


def make_bundle(data: DataDir, out: Path) -> Path:
    build(data, load_standard(data.standard), PERIOD.label, out)
    return out


@pytest.mark.slow
def test_five_honest_labs_cosign_and_a_bundle_verifies_with_three_witnesses(
    coordinator: Running, node_factory, synthetic_csv, tmp_path: Path
) -> None:
    sites = [f"lab-{i}" for i in range(1, 6)]
    nodes = [node_factory(site) for site in sites]
    for i, node in enumerate(nodes):
        report = submit(node, node.client, synthetic_csv(node.config.site_id, rows=300, seed=i))
        assert report.tree_size == i + 1 and report.delivered
    # Each lab's next round cosigns the latest checkpoint (size 5), and sees the others'.
    reports = [witness.step(node.conn, node.config, node.client) for node in nodes]
    assert [r.tree_size for r in reports] == [5] * 5
    # Labs see each other as opaque witness ids (the key's), never as site names.
    ids = [cosignature.witness_id(keys.public_raw(n.config.signing_key())) for n in nodes]
    assert reports[-1].cosigners == sorted(ids[:4])  # lab-5 checked the other four's cosignatures
    assert reports[0].cosigners == [ids[4]]  # lab-5 cosigned size 5 right after submitting
    status = json.loads(
        CliRunner()
        .invoke(node_cli, ["status", "--data-dir", str(nodes[0].config.data_dir), "--json"])
        .output
    )
    assert status["last_cosigned_checkpoint"]["tree_size"] == 5
    assert status["ledger_alarms"] == []

    # What the coordinator publishes is a C2SP checkpoint with five verifiable cosignatures.
    published = nodes[0].client.checkpoint()
    coordinator_raw = (nodes[0].config.data_dir / "coordinator.pub").read_bytes()
    body, parsed = checkpoint.open_checkpoint(
        published.checkpoint, checkpoint.origin_for(coordinator_raw), coordinator_raw
    )
    assert not any(k.site_id for k in published.witnesses)  # keys only: no lab's name
    cosigners = [
        cosignature.Cosigner(cosignature.opaque_witness_name(bytes(k.public_key)), k.public_key)
        for k in published.witnesses
    ]
    found, bad = cosignature.verified_cosignatures(parsed, cosigners)
    assert body.size == 5 and not bad
    names = sorted(cosignature.WITNESS_PREFIX + i for i in ids)
    assert sorted(c.cosigner.name for c in found) == names

    bundle = make_bundle(coordinator.service.data, tmp_path / "bundle.zip")
    code, output = audit(bundle, "--witnesses", "3")
    assert code == 0, output
    assert "PASS witnesses: checkpoint 5" in output
    assert "cosigned by 5 enrolled site(s): lab-1, lab-2, lab-3, lab-4, lab-5; required 3" in output
    published_cli = CliRunner().invoke(
        coordinator_cli, ["checkpoint", "--data-dir", str(coordinator.service.data.path)]
    )
    assert published_cli.exit_code == 0, published_cli.output
    assert "tree size 5, cosigned by 5 site(s): lab-1, lab-2, lab-3, lab-4, lab-5" in (
        published_cli.stderr
    )
    printed = note.parse(published_cli.stdout_bytes)
    assert checkpoint.parse_body(printed.text) == body and len(printed.signatures) == 6
    code, output = audit(bundle, "--witnesses", "6")
    assert code == 1 and "FAIL witnesses:" in output and "required 6" in output

    # A cosignature moved onto the bundle's checkpoint by someone without the lab's key fails.
    files = {n: zipfile.ZipFile(bundle).read(n) for n in zipfile.ZipFile(bundle).namelist()}
    forged_key = keys.generate()
    original = note.parse(files["checkpoint.txt"])
    lab_1 = cosignature.WITNESS_PREFIX + ids[0]
    forged_line = cosignature.cosign(original.text, lab_1, forged_key, 1_800_000_000)
    with_forgery = note.Note(
        original.text,
        tuple(s for s in original.signatures if s.name != lab_1) + (forged_line,),
    )
    from auditor.witnesses import check

    result = check(
        {**files, "checkpoint.txt": with_forgery.encode()}, coordinator_raw, 5, body.root_hash, 5
    )
    assert not result.ok and "lab-1" not in result.sites and len(result.sites) == 4


def test_the_coordinator_keeps_only_verified_cosignatures_of_its_own_checkpoints(
    coordinator: Running, node_factory
) -> None:
    node = node_factory("lab-a")
    published = note.parse(node.client.checkpoint().checkpoint)
    raw = (node.config.data_dir / "coordinator.pub").read_bytes()
    origin = checkpoint.origin_for(raw)
    (own,) = [s for s in published.signatures if s.name == origin]
    name = cosignature.witness_name("lab-a")

    def send(text: str, *lines: note.Signature) -> grpc.StatusCode | int:
        try:
            return node.client.add_cosignature(note.Note(text, lines).encode()).cosigners
        except Exception as exc:  # noqa: BLE001 - the node client's RpcFailure carries the code
            return exc.code  # type: ignore[attr-defined]

    good = cosignature.cosign(published.text, name, node.config.signing_key(), 1_800_000_000)
    stranger = cosignature.cosign(published.text, name, keys.generate(), 1_800_000_000)
    assert send(published.text, own, stranger) == grpc.StatusCode.UNAUTHENTICATED
    other = checkpoint.Checkpoint(origin, 0, bytes(32)).body()
    made_up = cosignature.cosign(other, name, node.config.signing_key(), 1_800_000_000)
    assert send(other, own, made_up) == grpc.StatusCode.INVALID_ARGUMENT
    assert send(published.text, own, good, good) == grpc.StatusCode.INVALID_ARGUMENT
    assert send(published.text, own, good) == 1
    assert (
        cosignature.witness_name("lab-a")
        in note.parse(node.client.checkpoint().checkpoint).encode().decode()
    )


def test_witness_command_cosigns_and_says_when_the_coordinator_is_unreachable(
    coordinator: Running, node_factory
) -> None:
    node = node_factory("lab-a")
    data_dir = str(node.config.data_dir)
    run = CliRunner().invoke(node_cli, ["witness", "--data-dir", data_dir])
    assert run.exit_code == 0, run.output
    assert "witness: cosigned checkpoint 0; also cosigned by no other site yet" in run.output
    toml = node.config.data_dir / "node.toml"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    toml.write_text(toml.read_text().replace(node.config.coordinator, f"127.0.0.1:{dead}"))
    run = CliRunner().invoke(node_cli, ["witness", "--data-dir", data_dir])
    assert run.exit_code == 3 and "cannot be reached" in run.output, run.output


class SplitView(cgrpc.CoordinatorServicer):
    """One coordinator address that shows a lab the forked ledger for every call, while the
    checkpoint it publishes (GetCheckpoint, the same for everyone) is the main ledger's."""

    def __init__(self, fork_port: int, main_port: int) -> None:
        self.fork = cgrpc.CoordinatorStub(grpc.insecure_channel(f"127.0.0.1:{fork_port}"))
        self.main = cgrpc.CoordinatorStub(grpc.insecure_channel(f"127.0.0.1:{main_port}"))


def _forwarder(name: str):
    def forward(self: SplitView, request, context):
        return getattr(self.main if name == "GetCheckpoint" else self.fork, name)(request)

    return forward


for _name in cpb.DESCRIPTOR.services_by_name["Coordinator"].methods_by_name:
    setattr(SplitView, _name, _forwarder(_name))


@pytest.mark.slow
def test_a_forked_log_is_caught_by_the_lab_and_its_bundle_lacks_witnesses(
    coordinator: Running, node_factory, synthetic_csv, tmp_path: Path
) -> None:
    lab_a, lab_b, lab_c = (node_factory(s) for s in ("lab-a", "lab-b", "lab-c"))
    for i, node in enumerate((lab_a, lab_b, lab_c)):
        submit(node, node.client, synthetic_csv(node.config.site_id, rows=300, seed=i))
    for node in (lab_a, lab_b, lab_c):
        assert witness.step(node.conn, node.config, node.client).tree_size == 3

    # The fork: the same ledger and key, served twice from size 3 on.
    main_data = coordinator.service.data
    coordinator.stop(grace=1)
    fork_data = DataDir(tmp_path / "fork")
    shutil.copytree(main_data.path, fork_data.path)
    main = start(main_data, "127.0.0.1:0", insecure=True)
    fork = start(fork_data, "127.0.0.1:0", insecure=True)
    view = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    cgrpc.add_CoordinatorServicer_to_server(SplitView(fork.port, main.port), view)
    view_port = view.add_insecure_port("127.0.0.1:0")
    view.start()
    clients: list[CoordinatorClient] = []
    try:
        to_main_b, to_main_c = client_at(lab_b, main.port), client_at(lab_c, main.port)
        to_fork_a = client_at(lab_a, fork.port)
        clients += [to_main_b, to_main_c, to_fork_a]
        # Lab B submits to the main tree; B and C cosign its size 4.
        assert submit(lab_b, to_main_b, synthetic_csv("lab-b", rows=200, seed=7, name="b2.csv"))
        assert witness.step(lab_c.conn, lab_c.config, to_main_c).tree_size == 4
        # Lab A submits to the forked tree; on its own, the fork looks consistent to lab A
        # (it extends the size 3 everyone cosigned), so lab A cosigns the fork's size 4.
        forked = submit(lab_a, to_fork_a, synthetic_csv("lab-a", rows=200, seed=8, name="a2.csv"))
        assert forked.tree_size == 4 and forked.cosigners == []
        assert witness.open_alarm(lab_a.conn) is None

        # Then lab A sees the checkpoint the coordinator publishes, cosigned by B and C.
        toml = lab_a.config.data_dir / "node.toml"
        toml.write_text(
            toml.read_text().replace(lab_a.config.coordinator, f"127.0.0.1:{view_port}")
        )
        run = CliRunner().invoke(node_cli, ["witness", "--data-dir", str(lab_a.config.data_dir)])
        assert run.exit_code == 1, run.output
        assert "ALARM" in run.output and "two different checkpoints for tree size 4" in run.output

        # The evidence: two checkpoints of size 4, both signed by the coordinator's key.
        ((reason, folder),) = [(a["reason"], a["evidence"]) for a in witness.alarms(lab_a.conn)]
        assert "split view" in reason
        raw = (lab_a.config.data_dir / "coordinator.pub").read_bytes()
        origin = checkpoint.origin_for(raw)
        evidence = sorted(Path(folder).glob("checkpoint-*.txt"))
        assert [p.name for p in evidence] == ["checkpoint-4-a.txt", "checkpoint-4-b.txt"]
        opened = [checkpoint.open_checkpoint(p.read_bytes(), origin, raw)[0] for p in evidence]
        assert [c.size for c in opened] == [4, 4] and opened[0].root_hash != opened[1].root_hash
        assert Path(folder).parent == lab_a.config.data_dir / "alarms"

        status = CliRunner().invoke(node_cli, ["status", "--data-dir", str(lab_a.config.data_dir)])
        assert "LEDGER ALARM" in status.output and folder in status.output
        with pytest.raises(LedgerAlarm, match="alarm is open"):
            witness.step(lab_a.conn, lab_a.config, to_fork_a)

        # An auditor: the fork's bundle (it holds lab A's second summary) has one witness.
        fork_bundle = make_bundle(fork_data, tmp_path / "fork.zip")
        code, output = audit(fork_bundle, "--witnesses", "2")
        assert code == 1
        failed = [line for line in output.splitlines() if line.startswith("FAIL")]
        assert failed == [
            f"FAIL witnesses: checkpoint 4 (root {opened_root(fork_bundle)}…) cosigned by "
            "1 enrolled site(s): lab-a; required 2"
        ], output
        # The main tree's bundle, cosigned by B and C, passes.
        code, output = audit(make_bundle(main_data, tmp_path / "main.zip"), "--witnesses", "2")
        assert code == 0 and "lab-b, lab-c; required 2" in output, output

        # Lab C, shown the fork later (its next submission goes there), alarms too: the fork's
        # size 5 does not extend the size 4 lab C cosigned.
        to_fork_c = client_at(lab_c, fork.port)
        clients.append(to_fork_c)
        lab_c.ingest(synthetic_csv("lab-c", rows=200, seed=9, name="c2.csv"))
        queue_summary(lab_c.conn, lab_c.config, load_cached(lab_c.config.standard_path), PERIOD)
        with pytest.raises(LedgerAlarm, match="size 5 does not extend size 4"):
            flush(lab_c.conn, lab_c.config, to_fork_c)
        (alarm_c,) = witness.alarms(lab_c.conn)
        assert sorted(p.name for p in Path(alarm_c["evidence"]).iterdir()) == [
            "ALARM.txt",
            "checkpoint-4-cosigned.txt",
            "checkpoint-5.txt",
        ]
    finally:
        for client in clients:
            client.close()
        view.stop(0)
        fork.stop(grace=1)
        main.stop(grace=1)


def opened_root(bundle: Path) -> str:
    text = note.parse(zipfile.ZipFile(bundle).read("checkpoint.txt")).text
    return checkpoint.parse_body(text).root_hash.hex()[:16]


def test_only_keys_valid_when_they_cosigned_count_as_witnesses() -> None:
    """auditor/witnesses.py offline: a site revoked, or a key retired, before it cosigned does not
    count; a key enrolled after the cosignature's time does not either; the others are named."""
    from auditor.witnesses import check

    log_key = keys.generate()
    raw = keys.public_raw(log_key)
    made = checkpoint.Checkpoint(checkpoint.origin_for(raw), 9, bytes(range(32)))
    signed = checkpoint.sign(made, log_key)
    when = 1_800_000_000  # 2027-01-15T08:00:00Z
    sites = {
        "lab-ok": ("2026-01-01T00:00:00+00:00", None, None),
        "lab-revoked": ("2026-01-01T00:00:00+00:00", None, "2026-06-01T00:00:00+00:00"),
        "lab-retired": ("2026-01-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00", None),
        "lab-late": ("2027-06-01T00:00:00+00:00", None, None),
        "lab-revoked-later": ("2026-01-01T00:00:00+00:00", None, "2027-06-01T00:00:00+00:00"),
    }
    records = []
    for site, (enrolled, retired, revoked) in sites.items():
        key = keys.generate()
        signed = signed.with_signature(
            cosignature.cosign(made.body(), cosignature.witness_name(site), key, when)
        )
        records.append(
            {
                "site_id": site,
                "public_key": base64.b64encode(keys.public_raw(key)).decode(),
                "enrolled_at": enrolled,
                "retired_at": retired,
                "site_revoked_at": revoked,
            }
        )
    files = {"checkpoint.txt": signed.encode(), "keys/witnesses.json": json.dumps(records).encode()}
    result = check(files, raw, 9, made.root_hash, 2)
    assert result.ok and result.sites == ("lab-ok", "lab-revoked-later")
    assert "not counted (key not valid when cosigned): lab-late, lab-retired, lab-revoked" in (
        result.detail
    )
    assert not check(files, raw, 9, made.root_hash, 3).ok
    # Another tree head than the checkpoint's, or another coordinator's key: nothing counts.
    assert "not the signed tree head" in check(files, raw, 8, made.root_hash, 0).detail
    assert not check(files, keys.public_raw(keys.generate()), 9, made.root_hash, 0).ok
    # An old bundle without a checkpoint passes only when no witnesses are asked for.
    assert check({}, raw, 9, made.root_hash, 0).ok
    assert not check({}, raw, 9, made.root_hash, 1).ok
