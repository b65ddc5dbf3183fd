"""Container health: the coordinator answers grpc.health.v1 over mTLS; a node's database opens."""

import os
import sqlite3
import sys

data = "/var/lib/rarenet/data"
if os.environ.get("ROLE") == "coordinator":
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    pki = "/pki"
    read = lambda name: open(os.path.join(pki, name), "rb").read()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        read("ca.pem"), read("coordinator.key"), read("coordinator.pem")
    )
    with grpc.secure_channel("localhost:8443", credentials) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check  # type: ignore[attr-defined]  # the types-grpcio-health-checking stub's HealthStub has no methods
        status = check(health_pb2.HealthCheckRequest(), timeout=5).status
    sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else 1)
sqlite3.connect(os.path.join(data, "node.db")).execute("SELECT COUNT(*) FROM outbox").fetchone()
