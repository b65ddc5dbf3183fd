"""Known-answer cases: JSON in, JSON out, so another implementation (in R, say) can be checked
against this method, and auditors can check theirs.

A case file (tests/fixtures/method/*.json) holds:
  description      what the case exercises
  method_version   the METHOD_VERSION that wrote `expected`
  period           the period benchmarked
  standard         the testing standard's TOML text
  inputs           by_period {period: {site: {leaf, summary}}} with each summary in the protobuf
                   JSON mapping of rarenet.v1.SiteSummary; revoked [site]; eqa_rounds [{round
                   (EqaRound JSON), truth (the truth CSV text), responses {site: {leaf, response}}}]
  expected         the benchmark (method.benchmark.compute) as JSON; flag messages are empty
                   (prose is not part of the method)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from method import benchmark
from method.inputs import EqaRoundInput, Inputs
from method.standard import Standard, parse
from protos import wire
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb


def _message(obj: dict[str, Any], kind: type[Any]) -> Any:
    return wire.decode(json.dumps(obj).encode("utf-8"), kind)


def inputs(case: dict[str, Any]) -> tuple[Inputs, str, Standard]:
    """The typed inputs, period and standard of a case."""
    raw = case["inputs"]
    by_period = {
        period: {
            site: (int(entry["leaf"]), _message(entry["summary"], pb.SiteSummary))
            for site, entry in sites.items()
        }
        for period, sites in raw["by_period"].items()
    }
    rounds = [
        EqaRoundInput(
            _message(r["round"], epb.EqaRound),
            r["truth"].encode("utf-8"),
            {
                site: (int(e["leaf"]), _message(e["response"], epb.EqaResponse))
                for site, e in r["responses"].items()
            },
        )
        for r in raw.get("eqa_rounds", [])
    ]
    data = Inputs(by_period, set(raw.get("revoked", [])), rounds)
    return data, case["period"], parse(case["standard"], "the case's standard")


def run(case: dict[str, Any]) -> dict[str, Any]:
    """The method's answer for a case, as JSON would carry it."""
    data, period, standard = inputs(case)
    result: dict[str, Any] = json.loads(json.dumps(benchmark.compute(data, period, standard)))
    return result


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def to_json(message: Any) -> Any:
    return json.loads(wire.encode(message))
