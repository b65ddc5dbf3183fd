"""The wire contract shared by lab nodes, the coordinator and auditors.

Generated protobuf code lives in protos.rarenet.v1; the small modules beside this file hold what
every side needs to read the contract the same way: DSSE signing (dsse), keys (keys), periods
(periods), the RFC 9162 Merkle ledger hashing (merkle), payload encoding (wire) and the loopback
rule for plain-text gRPC (net).
"""
