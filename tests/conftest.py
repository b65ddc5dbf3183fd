"""Fixtures: a real coordinator serving gRPC on 127.0.0.1 port 0, real node data directories,
real keys, real SQLite files under tmp_path. No mocks where the real thing runs."""

from __future__ import annotations

import socket
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from coordinator import enrolment
from coordinator import store as coordinator_store
from coordinator.config import DataDir
from coordinator.config import init as init_coordinator
from coordinator.server import Running, start
from node import config as node_config
from node import enroll as node_enroll
from node import store as node_store
from node.client import CoordinatorClient
from node.ingest import ingest_file
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.synth import generate, write_csv
from protos.periods import parse as parse_period

PERIOD = parse_period("2026Q3")


@pytest.fixture
def coordinator(tmp_path: Path):
    data = init_coordinator(tmp_path / "coordinator")
    running = start(data, "127.0.0.1:0", insecure=True)
    yield running
    running.stop(grace=1)


@dataclass
class Node:
    config: node_config.NodeConfig
    conn: sqlite3.Connection
    client: CoordinatorClient

    def ingest(self, path: Path):
        return ingest_file(
            self.conn, path, Pseudonymiser(self.config.pseudonym_secret()), Mapping()
        )


def make_node(tmp_path: Path, running: Running, site_id: str, port: int | None = None) -> Node:
    data = running.service.data
    token, _ = enrolment.add_site(coordinator_store.connect(data.db), site_id)
    cfg = node_config.init(
        tmp_path / site_id, site_id, f"127.0.0.1:{port or running.port}", insecure=True
    )
    conn = node_store.connect(cfg.db_path)
    client = CoordinatorClient(cfg)
    node_enroll.enroll(cfg, conn, client, token)
    return Node(cfg, conn, client)


@pytest.fixture
def node_factory(tmp_path: Path, coordinator: Running):
    made: list[Node] = []

    def factory(site_id: str = "lab-a", port: int | None = None) -> Node:
        node = make_node(tmp_path, coordinator, site_id, port)
        made.append(node)
        return node

    yield factory
    for node in made:
        node.client.close()


@pytest.fixture
def synthetic_csv(tmp_path: Path):
    def factory(
        site_id: str = "lab-a",
        rows: int = 2000,
        seed: int = 1,
        profiles=("normal",),
        name=None,
        **kw,
    ) -> Path:
        path = tmp_path / (name or f"{site_id}-{seed}.csv")
        write_csv(generate(site_id, rows, seed, profiles, PERIOD, **kw), path)
        return path

    return factory


class Recorder:
    """A loopback TCP relay that records every byte between a node and the coordinator."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.captured = bytearray()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.captured.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def recorder(coordinator: Running):
    relay = Recorder(coordinator.port)
    yield relay
    relay.close()


def rpc_code(exc_info) -> grpc.StatusCode:
    return exc_info.value.code


__all__ = ["PERIOD", "Node", "Recorder", "make_node", "rpc_code", "DataDir"]
