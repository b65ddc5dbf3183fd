"""rarenet's benchmark method: one pure, versioned package that the coordinator and auditors run.

It holds the statistics, the flag rules, the parsing of the testing standard and EQA scoring. It
imports only `protos` (the wire contract), the standard library, numpy and scipy: no database, no
network, no HTML and no prose. `docs/method.md` gives every formula with its source, and
`tests/fixtures/method/*.json` are known answers another implementation can be checked against.

METHOD_VERSION is written into every benchmark.json; an auditor recomputes a report only with the
method version that wrote it.
"""

METHOD_VERSION = "2026.4"

__all__ = ["METHOD_VERSION"]
