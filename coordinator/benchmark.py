"""Benchmarks for one period: every site against the network and the testing standard.

Input: the latest accepted summary of each site for the period (and earlier periods for trends).
Output: one JSON-ready dict (see `compute`) that the report, GetBenchmark and auditors read.
Every flag carries the rule, the figures, the standard's source and a sentence a lab director
can act on. Levels: "alert" (outside 95% limits, or a point estimate past a target) and "alarm"
(outside 99.8% limits, or an interval entirely past a target).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator import eqa, stats
from coordinator.standards import Standard
from protos import wire
from protos.periods import Period
from protos.periods import parse as parse_period
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS

ADVICE = {
    "MET_EX14": "DNA-only panels miss MET exon 14 skipping at splice sites; test DNA-negative non-squamous "
    "cases with RNA-based or DNA+RNA NGS.",
    "ALK": "Check ALK IHC (D5F3) and FISH scoring against an EQA scheme, and confirm equivocal IHC by FISH or RNA NGS.",
    "ROS1": "ROS1 fusions are best found by RNA NGS or FISH; confirm IHC screens.",
    "RET": "RET fusions are best found by RNA-based NGS.",
    "NTRK": "NTRK fusions are best found by RNA-based NGS; pan-TRK IHC only as a screen.",
    "EGFR": "Check tumour content and the assay's limit of detection; review cases with low tumour fraction.",
}


def latest_summaries(
    conn: sqlite3.Connection, period: str
) -> dict[str, tuple[int, pb.SiteSummary]]:
    """site id: (leaf index, summary) of the highest accepted sequence for the period, revoked sites included."""
    rows = conn.execute(
        """SELECT s.site_id, s.leaf_index, s.payload FROM summaries s
           WHERE s.period = ? AND s.sequence = (SELECT MAX(sequence) FROM summaries t
                                                WHERE t.site_id = s.site_id AND t.period = s.period)
           ORDER BY s.site_id""",
        (period,),
    )
    return {
        site: (leaf, wire.decode(payload.encode("utf-8"), pb.SiteSummary))
        for site, leaf, payload in rows
    }


def _released(s: pb.StratumCounts) -> bool:
    """A stratum whose positive and negative cells can be used for positivity."""
    if s.withheld:
        return False
    return not s.suppressed_cells or not {"positive", "negative"} & set(s.suppressed_cells)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _flag(
    site: str, rule: str, level: str, subject: str, figures: dict, source: str, message: str
) -> dict:
    return {
        "site_id": site,
        "rule": rule,
        "level": level,
        "subject": subject,
        "figures": figures,
        "source": source,
        "message": message,
    }


def _noise_variance(summary: pb.SiteSummary) -> float:
    """Variance of the noise on one released count: the cell-key perturbation's (published in the
    summary, docs/privacy.md), or the earlier differential privacy's; 0 for exact counts."""
    if summary.policy.perturbation.mechanism == "cell_key":
        return summary.policy.perturbation.noise_variance
    if summary.policy.differential_privacy.enabled:
        return stats.geometric_noise_variance(summary.policy.differential_privacy.noise_scale)
    return 0.0


def _noise_bound(summary: pb.SiteSummary) -> int:
    """The most the site's perturbation moves one released count (0: exact counts)."""
    perturbation = summary.policy.perturbation
    return perturbation.max_noise if perturbation.mechanism == "cell_key" else 0


def _positivity(
    summaries: dict[str, pb.SiteSummary], standard: Standard, flags: list, phi_on: bool
) -> tuple[dict, dict]:
    """Site-level positivity per biomarker (pooled over methods and specimens) with funnel limits."""
    per_site: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    noise = {site: _noise_variance(s) for site, s in summaries.items()}
    for site, summary in summaries.items():
        for s in summary.strata:
            if s.method == ALL_METHODS and _released(s):
                cell = per_site[site][s.biomarker]
                cell[0] += s.positive
                cell[1] += s.positive + s.negative
                # strata whose positives carry noise: each one under DP; under cell-key
                # perturbation only those released non-zero (a released 0 is exact)
                perturbed = summary.policy.perturbation.mechanism == "cell_key"
                cell[2] += 1 if s.positive or not perturbed else 0
    network: dict[str, dict] = {}
    result: dict[str, dict] = defaultdict(dict)
    biomarkers = sorted({b for cells in per_site.values() for b in cells})
    for biomarker in biomarkers:
        xs = [per_site[s][biomarker][0] for s in per_site if biomarker in per_site[s]]
        ns = [per_site[s][biomarker][1] for s in per_site if biomarker in per_site[s]]
        theta = sum(xs) / sum(ns) if sum(ns) else 0.0
        phi = stats.overdispersion(xs, ns, theta) if phi_on else 1.0
        network[biomarker] = {
            "positive": sum(xs),
            "valid": sum(ns),
            "rate": theta,
            "phi": phi,
            "sites": len(xs),
        }
        expected = standard.positivity(biomarker)
        for site in sorted(per_site):
            if biomarker not in per_site[site]:
                continue
            x, n, cells = per_site[site][biomarker]
            # A perturbed site's count carries its strata's noise: it enters the reference
            # distribution as extra variance, so noise alone does not push a site past a limit.
            site_phi = phi
            if noise[site] and n and 0 < theta < 1:
                site_phi = phi * (1 + cells * noise[site] / (n * theta * (1 - theta)))
            limits = stats.funnel_limits(n, theta, site_phi)
            ci = (
                stats.wilson_with_noise(x, n, cells, noise[site])
                if noise[site]
                else stats.wilson(x, n)
            )
            status = stats.funnel_status(x, n, limits)
            bound = _noise_bound(summaries[site]) * cells
            if status.startswith("alarm") and bound:
                # an alarm must hold for the most favourable true count the noise bound allows
                toward = x - bound if status.endswith("high") else x + bound
                if not stats.funnel_status(max(toward, 0), n, limits).startswith("alarm"):
                    status = status.replace("alarm", "alert")
            entry = {
                "positive": x,
                "valid": n,
                "rate": x / n if n else None,
                "ci95": list(ci),
                "network_rate": theta,
                "limits": limits.__dict__,
                "status": status,
            }
            if noise[site]:
                entry["noise_variance_per_count"] = noise[
                    site
                ]  # the site perturbed its counts: the interval is wider
            if expected:
                entry["expected"] = [expected["low"], expected["high"]]
            result[site][biomarker] = entry
            figures = {
                "positive": x,
                "valid": n,
                "rate": entry["rate"],
                "ci95": list(ci),
                "network_rate": theta,
            }
            if status != "in_control":
                level = status.split("_")[0]
                direction = "below" if status.endswith("low") else "above"
                limit = (
                    limits.lower998
                    if status == "alarm_low"
                    else limits.lower95
                    if status == "alert_low"
                    else limits.upper998
                    if status == "alarm_high"
                    else limits.upper95
                )
                conf = "99.8%" if level == "alarm" else "95%"
                advice = (
                    ADVICE.get(biomarker, "Review the assay and case mix.")
                    if direction == "below"
                    else "Check for false positives and for a case mix enriched in this driver."
                )
                flags.append(
                    _flag(
                        site,
                        "positivity_funnel",
                        level,
                        biomarker,
                        {**figures, "limit": limit},
                        standard.source("funnel"),
                        f"{biomarker} positivity {_pct(x / n)} ({x}/{n}) is {direction} the network's "
                        f"{_pct(theta)}, beyond the {conf} funnel limit ({_pct(limit)}). {advice}",
                    )
                )
            if expected and n and ci[1] < expected["low"]:
                flags.append(
                    _flag(
                        site,
                        "positivity_below_expected",
                        "alarm",
                        biomarker,
                        {**figures, "expected_low": expected["low"]},
                        expected["source"],
                        f"{biomarker} positivity {_pct(x / n)} ({x}/{n}; 95% CI {_pct(ci[0])}-{_pct(ci[1])}) "
                        f"lies entirely below the expected {_pct(expected['low'])}-{_pct(expected['high'])}. "
                        f"{ADVICE.get(biomarker, 'Review the assay and case mix.')}",
                    )
                )
    return dict(result), network


def _strata(summaries: dict[str, pb.SiteSummary]) -> tuple[list[dict], list[dict]]:
    """Per stratum rows with Wilson intervals and funnel status against the same stratum network-wide."""
    pooled: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for summary in summaries.values():
        for s in summary.strata:
            if _released(s):
                cell = pooled[(s.biomarker, s.method, s.specimen)]
                for i, v in enumerate((s.tests, s.positive, s.negative, s.failed, s.equivocal)):
                    cell[i] += v
    rows = []
    for site, summary in sorted(summaries.items()):
        for s in summary.strata:
            row = {
                "site_id": site,
                "biomarker": s.biomarker,
                "method": s.method,
                "specimen": s.specimen,
                "tests": s.tests,
                "positive": s.positive,
                "negative": s.negative,
                "failed": s.failed,
                "equivocal": s.equivocal,
                "withheld": s.withheld,
                "suppressed_cells": list(s.suppressed_cells),
                "disclosure_note": s.disclosure_note,
            }
            if _released(s):
                n = s.positive + s.negative
                net = pooled[(s.biomarker, s.method, s.specimen)]
                theta = net[1] / (net[1] + net[2]) if net[1] + net[2] else 0.0
                limits = stats.funnel_limits(n, theta) if n else None
                row.update(
                    rate=s.positive / n if n else None,
                    ci95=list(stats.wilson(s.positive, n)) if n else None,
                    network_rate=theta,
                    limits=limits.__dict__ if limits else None,
                    status=stats.funnel_status(s.positive, n, limits) if limits else "no_data",
                )
            else:
                row.update(rate=None, ci95=None, network_rate=None, limits=None, status="withheld")
            rows.append(row)
    network = [
        {
            "biomarker": b,
            "method": m,
            "specimen": sp,
            "tests": c[0],
            "positive": c[1],
            "negative": c[2],
            "failed": c[3],
            "equivocal": c[4],
            "rate": c[1] / (c[1] + c[2]) if c[1] + c[2] else None,
            "ci95": list(stats.wilson(c[1], c[1] + c[2])) if c[1] + c[2] else None,
        }
        for (b, m, sp), c in sorted(pooled.items())
    ]
    return rows, network


def _failure(site: str, summary: pb.SiteSummary, standard: Standard, flags: list) -> dict:
    by_specimen: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in summary.strata:
        if (
            s.method == ALL_METHODS
            and not s.withheld
            and "failed" not in s.suppressed_cells
            and s.specimen != wire.MERGED
        ):
            by_specimen[s.specimen][0] += s.failed
            by_specimen[s.specimen][1] += s.tests
    out = {}
    for specimen, (failed, tests) in sorted(by_specimen.items()):
        ceiling = standard.max_failure(specimen)
        ci = stats.wilson(failed, tests)
        rate = failed / tests if tests else None
        level = None
        if ceiling is not None and rate is not None:
            level = "alarm" if ci[0] > ceiling else "alert" if rate > ceiling else None
        out[specimen] = {
            "failed": failed,
            "tests": tests,
            "rate": rate,
            "ci95": list(ci),
            "max": ceiling,
            "status": level or "ok",
        }
        if level:
            flags.append(
                _flag(
                    site,
                    "failure_rate",
                    level,
                    specimen,
                    {
                        "failed": failed,
                        "tests": tests,
                        "rate": rate,
                        "ci95": list(ci),
                        "max": ceiling,
                    },
                    standard.source("failure_rate"),
                    f"{specimen.capitalize()} failure rate {_pct(rate)} ({failed}/{tests}; 95% CI "
                    f"{_pct(ci[0])}-{_pct(ci[1])}) exceeds the standard's maximum of {_pct(ceiling)}. "
                    f"Patients with failed {specimen} samples go untested: review specimen adequacy "
                    "(rapid on-site evaluation, cell blocks) and consider plasma testing.",
                )
            )
    return out


def _turnaround(site: str, summary: pb.SiteSummary, standard: Standard, flags: list) -> dict:
    counts: list[int] = []
    for h in summary.turnaround:
        if h.withheld:
            continue
        if len(counts) < len(h.counts):
            counts.extend([0] * (len(h.counts) - len(counts)))
        for i, c in enumerate(h.counts):
            counts[i] += c
    total = sum(counts)
    target = standard.target_days
    if not total:
        return {"tests": 0}
    within = sum(counts[: target + 1])
    share = within / total
    ci = stats.wilson(within, total)
    goal = standard.tat_goal
    level = "alarm" if ci[1] < goal else "alert" if share < goal else None
    out = {
        "tests": total,
        "median": stats.histogram_quantile(counts, 0.5),
        "p90": stats.histogram_quantile(counts, 0.9),
        "within_target": within,
        "share_within_target": share,
        "ci95": list(ci),
        "target_days": target,
        "goal": goal,
        "histogram": counts,
        "status": level or "ok",
    }
    if level:
        flags.append(
            _flag(
                site,
                "turnaround",
                level,
                "all specimens",
                {
                    k: out[k]
                    for k in ("tests", "median", "p90", "share_within_target", "ci95", "goal")
                },
                standard.source("turnaround"),
                f"Only {_pct(share)} of tests ({within}/{total}) were reported within {target} working days "
                f"(goal {_pct(goal)}); median {out['median']}, 90th percentile {out['p90']} working days. "
                "Patients wait for treatment decisions: look for batching, send-outs and re-biopsies.",
            )
        )
    return out


def _panel(site: str, summary: pb.SiteSummary, standard: Standard, flags: list) -> dict:
    panel = summary.panel
    if panel.withheld or not panel.patients:
        return {"patients": 0, "withheld": panel.withheld}
    target = float(standard.section("panel").get("target_share_all_required", 0.9))
    share = panel.with_all_required / panel.patients
    ci = stats.wilson(panel.with_all_required, panel.patients)
    out: dict[str, Any] = {
        "patients": panel.patients,
        "with_all_required": panel.with_all_required,
        "share": share,
        "ci95": list(ci),
        "target": target,
        "biomarkers": {b.biomarker: b.with_valid_result / panel.patients for b in panel.biomarkers},
    }
    missing = [b for b, v in out["biomarkers"].items() if v < target]
    level = "alarm" if ci[1] < target else "alert" if share < target else None
    out["status"] = level or "ok"
    if level:
        flags.append(
            _flag(
                site,
                "panel_coverage",
                level,
                "required panel",
                {
                    "patients": panel.patients,
                    "with_all_required": panel.with_all_required,
                    "share": share,
                    "ci95": list(ci),
                    "target": target,
                    "least_covered": missing,
                },
                standard.source("panel"),
                f"Only {_pct(share)} of non-squamous patients ({panel.with_all_required}/{panel.patients}) "
                f"had a valid result for every required biomarker (target {_pct(target)}); least covered: "
                f"{', '.join(missing) or 'none'}. Move to a panel that covers the guideline's drivers.",
            )
        )
    return out


def _concordance_entry(table: pb.ConcordanceTable) -> dict:
    a, b = table.both_positive, table.index_positive_comparator_negative
    c, d = table.index_negative_comparator_positive, table.both_negative
    agree = stats.agreement(a, b, c, d)
    return {
        "kind": table.kind,
        "biomarker": table.biomarker,
        "index_method": table.index_method,
        "comparator_method": table.comparator_method,
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "excluded_failed": table.excluded_failed,
        "n": agree.n,
        "ppa": agree.ppa,
        "ppa_ci95": agree.ppa_ci,
        "npa": agree.npa,
        "npa_ci95": agree.npa_ci,
        "opa": agree.opa,
        "opa_ci95": agree.opa_ci,
        "kappa": agree.kappa,
        "kappa_se": agree.kappa_se,
        "kappa_ci95": agree.kappa_ci,
    }


def _concordance(site: str, summary: pb.SiteSummary, standard: Standard, flags: list) -> list[dict]:
    rules = standard.concordance
    out = []
    for table in summary.concordance:
        if table.withheld:
            out.append(
                {
                    "kind": table.kind,
                    "biomarker": table.biomarker,
                    "index_method": table.index_method,
                    "comparator_method": table.comparator_method,
                    "withheld": True,
                }
            )
            continue
        entry = _concordance_entry(table)
        out.append(entry)
        if table.kind == "tissue_plasma" and not rules.get("flag_tissue_plasma", False):
            continue
        # A perturbed site's cells are each within max_noise of the truth (and a 0 is exact): an
        # alarm is raised only if it holds for the most favourable table the noise allows.
        favourable = _concordance_entry(_favourable(table, summary.policy.perturbation))
        problems = []
        enough = {
            "ppa": entry["a"] + entry["c"] >= rules.get("min_positive_pairs", 5),
            "npa": entry["b"] + entry["d"] >= rules.get("min_negative_pairs", 10),
        }
        enough["kappa"] = enough["ppa"] and enough["npa"]
        for name, key in (("PPA", "ppa"), ("NPA", "npa"), ("kappa", "kappa")):
            value, ci, minimum = entry[key], entry[f"{key}_ci95"], rules.get(f"min_{key}")
            if value is None or minimum is None or not enough[key]:
                continue
            if ci[1] < minimum and (favourable[f"{key}_ci95"] or ci)[1] < minimum:
                problems.append(
                    (
                        "alarm",
                        f"{name} {value:.2f} (95% CI {ci[0]:.2f}-{ci[1]:.2f}) below {minimum}",
                    )
                )
            elif value < minimum:
                problems.append(("alert", f"{name} {value:.2f} below {minimum}"))
        if problems:
            level = "alarm" if any(p[0] == "alarm" for p in problems) else "alert"
            flags.append(
                _flag(
                    site,
                    "concordance",
                    level,
                    f"{table.biomarker} {table.index_method} vs {table.comparator_method}",
                    {
                        k: entry[k]
                        for k in ("a", "b", "c", "d", "ppa", "npa", "kappa", "kappa_ci95")
                    },
                    rules.get("source", ""),
                    f"{table.biomarker}: {table.index_method} agrees poorly with {table.comparator_method} "
                    f"({'; '.join(p[1] for p in problems)}). Review discordant cases and the "
                    f"{table.index_method} assay's validation.",
                )
            )
    return out


def _favourable(table: pb.ConcordanceTable, perturbation: pb.Perturbation) -> pb.ConcordanceTable:
    """The released table moved, within the published noise bound, towards agreement."""
    bound = perturbation.max_noise if perturbation.mechanism == "cell_key" else 0
    moved = pb.ConcordanceTable()
    moved.CopyFrom(table)
    moved.both_positive += bound
    moved.both_negative += bound
    for cell in ("index_positive_comparator_negative", "index_negative_comparator_positive"):
        value = getattr(table, cell)
        setattr(moved, cell, max(value - bound, 1) if value else 0)
    return moved


def _pooled_concordance(site_tables: dict[str, list[dict]]) -> list[dict]:
    pooled: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for tables in site_tables.values():
        for t in tables:
            if not t.get("withheld"):
                cell = pooled[
                    (t["kind"], t["biomarker"], t["index_method"], t["comparator_method"])
                ]
                for i, k in enumerate(("a", "b", "c", "d", "excluded_failed")):
                    cell[i] += t[k]
    return [
        _concordance_entry(
            pb.ConcordanceTable(
                kind=k,
                biomarker=b,
                index_method=i,
                comparator_method=c,
                both_positive=v[0],
                index_positive_comparator_negative=v[1],
                index_negative_comparator_positive=v[2],
                both_negative=v[3],
                excluded_failed=v[4],
            )
        )
        for (k, b, i, c), v in sorted(pooled.items())
    ]


def periods_for_trends(period: Period, count: int = 4) -> list[Period]:
    """The last `count` periods of the same kind, oldest first, ending with `period`."""
    periods = [period]
    while len(periods) < count:
        periods.insert(0, periods[0].previous())
    return periods


def _trends(
    by_period: dict[str, dict[str, pb.SiteSummary]], periods: list[Period], sites: list[str]
) -> dict:
    """Positivity per biomarker for each site over the trend periods."""
    trends: dict[str, dict] = {site: {} for site in sites}
    for p in periods:
        for site, summary in by_period.get(p.label, {}).items():
            if site not in trends:
                continue
            cells: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for s in summary.strata:
                if s.method == ALL_METHODS and _released(s):
                    cells[s.biomarker][0] += s.positive
                    cells[s.biomarker][1] += s.positive + s.negative
            for biomarker, (x, n) in cells.items():
                trends[site].setdefault(biomarker, []).append(
                    {"period": p.label, "positive": x, "valid": n, "rate": x / n if n else None}
                )
    return {"periods": [p.label for p in periods], "sites": trends}


@dataclass
class EqaRoundInput:
    """A closed EQA round as signed: the round (with its revealed salt), the truth file, and each
    site's latest response {site: (leaf index, response)}."""

    round: epb.EqaRound
    truth: bytes
    responses: dict[str, tuple[int, epb.EqaResponse]]


@dataclass
class Inputs:
    """Everything a benchmark is computed from, all of it signed: the latest summary of each site
    for the period and the trend periods before it ({period: {site: (leaf, summary)}}), the revoked
    sites, and the EQA rounds whose deadline falls in the period."""

    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]]
    revoked: set[str]
    eqa_rounds: list[EqaRoundInput]


def inputs(conn: sqlite3.Connection, period: str) -> Inputs:
    p = parse_period(period)
    by_period = {q.label: latest_summaries(conn, q.label) for q in periods_for_trends(p)}
    revoked = {r[0] for r in conn.execute("SELECT site_id FROM sites WHERE status = 'revoked'")}
    rounds = []
    for announcement, truth in conn.execute(
        "SELECT announcement, truth FROM eqa_rounds WHERE truth IS NOT NULL AND deadline BETWEEN ? AND ?"
        " ORDER BY round_id",
        (p.start.isoformat(), p.end.isoformat()),
    ):
        round_ = wire.decode(wire.parse_envelope(announcement).payload, epb.EqaRound)
        responses = {}
        for leaf, site, payload in conn.execute(
            "SELECT leaf_index, site_id, payload FROM eqa_responses WHERE round_id = ? ORDER BY sequence",
            (round_.round_id,),
        ):
            responses[site] = (leaf, wire.decode(payload.encode("utf-8"), epb.EqaResponse))
        rounds.append(EqaRoundInput(round_, bytes(truth), responses))
    return Inputs(by_period, revoked, rounds)


def compute(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None = None,
) -> dict:
    return compute_from(inputs(conn, period), period, standard, progress)


def _eqa(rounds: list[EqaRoundInput], standard: Standard, flags: list) -> dict[str, dict]:
    """Each closed round's scores, recomputed from the truth and the signed responses."""
    out: dict[str, dict] = {}
    for entry in rounds:
        truth = eqa.parse_truth(entry.truth)
        sheets = {}
        for site, (leaf, response) in sorted(entry.responses.items()):
            sheet = eqa.score(entry.round, truth, site, response, leaf)
            sheets[site] = {
                "points": sheet.points,
                "max_points": sheet.max_points,
                "score": sheet.score,
                "passed": sheet.passed,
                "errors": sheet.errors,
                "technical_failures": sheet.technical_failures,
                "outcomes": {
                    f"{line.sample_id}/{line.biomarker}": line.outcome for line in sheet.lines
                },
            }
            if not sheet.passed:
                wrong = [
                    f"{line.sample_id} {line.biomarker} ({line.outcome.replace('_', ' ')})"
                    for line in sheet.lines
                    if line.outcome != "correct"
                ]
                flags.append(
                    _flag(
                        site,
                        "eqa",
                        "alarm",
                        entry.round.round_id,
                        {
                            k: sheets[site][k]
                            for k in (
                                "points",
                                "max_points",
                                "score",
                                "errors",
                                "technical_failures",
                            )
                        },
                        standard.source("eqa"),
                        f"EQA round {entry.round.round_id} not passed: {sheet.points}/{sheet.max_points} "
                        f"({_pct(sheet.score)}) against the pass mark of {_pct(sheet.pass_share)}; "
                        f"{'; '.join(wrong)}. Review these samples' wet-lab and reporting steps.",
                    )
                )
        out[entry.round.round_id] = {
            "deadline": entry.round.deadline,
            "commitment_sha256": entry.round.commitment_sha256,
            "sites": sheets,
        }
    return out


def compute_from(
    data: Inputs, period: str, standard: Standard, progress: Callable[[str], None] | None = None
) -> dict:
    """The benchmark from signed inputs alone (no database): what an auditor recomputes."""
    by_period, revoked = data.by_period, data.revoked
    p = parse_period(period)
    latest = by_period.get(p.label, {})
    summaries = {site: s for site, (_, s) in latest.items()}
    flags: list[dict] = []
    if progress:
        progress(f"{len(summaries)} site summaries for {p.label}")
    positivity, network = _positivity(
        summaries, standard, flags, bool(standard.funnel.get("overdispersion"))
    )
    eqa_results = _eqa(data.eqa_rounds, standard, flags)
    strata_rows, network_strata = _strata(summaries)
    sites = {}
    concordance_by_site = {}
    for site, summary in sorted(summaries.items()):
        concordance_by_site[site] = _concordance(site, summary, standard, flags)
        sites[site] = {
            "site_id": site,
            "leaf_index": latest[site][0],
            "sequence": summary.sequence,
            "standard_version": summary.standard_version,
            "revoked": site in revoked,
            "policy": {
                "min_denominator": summary.policy.min_denominator,
                "small_stratum_action": summary.policy.small_stratum_action,
                "small_count_suppression": summary.policy.small_count_suppression,
            },
            "positivity": positivity.get(site, {}),
            "failure": _failure(site, summary, standard, flags),
            "turnaround": _turnaround(site, summary, standard, flags),
            "panel": _panel(site, summary, standard, flags),
            "concordance": concordance_by_site[site],
            "eqa": {r: e["sites"][site] for r, e in eqa_results.items() if site in e["sites"]},
        }
    rows_by_site: dict[str, list[dict]] = defaultdict(list)
    for row in strata_rows:
        rows_by_site[row["site_id"]].append(row)
    flags_by_site: dict[str, list[dict]] = defaultdict(list)
    for flag in flags:
        flags_by_site[flag["site_id"]].append(flag)
    for site in sites:
        sites[site]["strata"] = rows_by_site[site]
        sites[site]["flags"] = sorted(flags_by_site[site], key=lambda f: f["level"] != "alarm")
        levels = {f["level"] for f in sites[site]["flags"]}
        sites[site]["status"] = (
            "alarm" if "alarm" in levels else "alert" if "alert" in levels else "ok"
        )
    if progress:
        progress(f"{len(flags)} flags")
    plain = {
        label: {site: s for site, (_, s) in entries.items()} for label, entries in by_period.items()
    }
    return {
        "period": p.label,
        "standard": {"id": standard.id, "version": standard.version, "sha256": standard.sha256},
        "sites": sites,
        "network": {
            "positivity": network,
            "strata": network_strata,
            "concordance": _pooled_concordance(concordance_by_site),
        },
        "eqa": eqa_results,
        "flags": flags,
        "trends": _trends(plain, periods_for_trends(p), list(sites)),
    }


def for_site(benchmark: dict, site_id: str) -> dict:
    """A site's own view: its section in full, peers as anonymous points (no names). Peers are
    ordered by what is shown of them, so the order reveals nothing the page does not (ordering by
    name or by submission would help a lab guess who is who)."""
    own = benchmark["sites"].get(site_id)
    shown = sorted(
        (
            {
                "positivity": {
                    b: {"positive": v["positive"], "valid": v["valid"], "rate": v["rate"]}
                    for b, v in entry["positivity"].items()
                },
                "status": entry["status"],
            }
            for other, entry in benchmark["sites"].items()
            if other != site_id
        ),
        key=lambda peer: json.dumps(peer, sort_keys=True),
    )
    peers = [{"peer": f"peer-{n}", **peer} for n, peer in enumerate(shown, start=1)]
    return {
        "period": benchmark["period"],
        "standard": benchmark["standard"],
        "site": own,
        "network": {"positivity": benchmark["network"]["positivity"]},
        "peers": peers,
    }
