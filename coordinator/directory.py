"""The testing-assistance directory: for each rare driver, the labs that opted in (their summary's
`testing_directory`, set by the lab's policy) with the methods they run for it, their volume,
failure rate and median turnaround, so the network can route samples to labs that can find the
driver. RNA-capable and FISH labs first."""

from __future__ import annotations

import sqlite3

from rendering.labels import METHOD_CLASS, RARE_DRIVERS

ORDER = {"rna_capable": 0, "cytogenetic": 1, "protein": 2, "dna_only": 3}


def opted_in(conn: sqlite3.Connection, current: dict) -> set[str]:
    leaves = {s["leaf_index"]: site for site, s in current["sites"].items()}
    if not leaves:
        return set()
    marks = ",".join("?" * len(leaves))
    return {
        leaves[leaf]
        for leaf, flag in conn.execute(
            f"SELECT leaf_index, json_extract(payload, '$.testing_directory') FROM summaries"
            f" WHERE leaf_index IN ({marks})",
            list(leaves),
        )
        if flag in (1, True, "true")
    }


def entries(conn: sqlite3.Connection, current: dict) -> list[dict]:
    listed = opted_in(conn, current)
    out = []
    for site in sorted(listed):
        entry = current["sites"][site]
        for biomarker in RARE_DRIVERS:
            rows = [r for r in entry["strata"] if r["biomarker"] == biomarker and not r["withheld"]]
            methods = sorted(
                {r["method"] for r in rows if r["method"] in METHOD_CLASS and r["tests"]},
                key=lambda m: (ORDER[METHOD_CLASS[m]], m),
            )
            if not methods:
                continue
            per_test = [r for r in rows if r["method"] == "all"]
            tests = sum(r["tests"] for r in per_test)
            failed = sum(r["failed"] for r in per_test)
            out.append(
                {
                    "biomarker": biomarker,
                    "site_id": site,
                    "methods": methods,
                    "rna_capable": any(METHOD_CLASS[m] == "rna_capable" for m in methods),
                    "tests": tests,
                    "failure_rate": failed / tests if tests else None,
                    "median_turnaround": entry["turnaround"].get("median"),
                }
            )
    out.sort(
        key=lambda d: (
            RARE_DRIVERS.index(d["biomarker"]),
            ORDER[METHOD_CLASS[d["methods"][0]]],
            d["failure_rate"] if d["failure_rate"] is not None else 1.0,
            d["site_id"],
        )
    )
    return out
