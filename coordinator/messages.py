"""Flag messages: the sentence a lab director can act on, written from a flag's figures.

Prose belongs to the coordinator, not to the method: rewording a sentence changes no figure, and
an auditor's recomputation ignores `message`.
"""

from __future__ import annotations

from typing import Any

ADVICE = {
    "MET_EX14": "DNA-only panels miss MET exon 14 skipping at splice sites; test DNA-negative non-squamous "
    "cases with RNA-based or DNA+RNA NGS.",
    "ALK": "Check ALK IHC (D5F3) and FISH scoring against an EQA scheme, and confirm equivocal IHC by FISH or RNA NGS.",
    "ROS1": "ROS1 fusions are best found by RNA NGS or FISH; confirm IHC screens.",
    "RET": "RET fusions are best found by RNA-based NGS.",
    "NTRK": "NTRK fusions are best found by RNA-based NGS; pan-TRK IHC only as a screen.",
    "EGFR": "Check tumour content and the assay's limit of detection; review cases with low tumour fraction.",
}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pq(f: dict[str, Any]) -> str:
    if f.get("p") is None:
        return ""
    return f" (p = {f['p']:.2g}, q = {f['q']:.2g})"


def _missed(g: dict[str, Any]) -> str:
    if g.get("patients_missed") is None:
        return ""
    lo, hi = g["patients_missed_ci95"]
    causes = "; ".join(g.get("likely_causes") or []) or "not identified"
    return (
        f" About {g['patients_missed']:.1f} patients likely missed (95% interval {lo:.1f}-{hi:.1f});"
        f" likely cause: {causes}."
    )


def message(f: dict[str, Any]) -> str:
    g, rule, subject = f["figures"], f["rule"], f["subject"]
    pq = _pq(f)
    if rule == "positivity_funnel":
        below = f.get("direction") == "low"
        advice = (
            ADVICE.get(subject, "Review the assay and case mix.")
            if below
            else "Check for false positives and for a case mix enriched in this driver."
        )
        return (
            f"{subject} positivity {_pct(g['rate'])} ({g['positive']}/{g['valid']}) is "
            f"{'below' if below else 'above'} the rest of the network's {_pct(g['reference_rate'])}"
            f"{pq}. {advice}"
        )
    if rule == "positivity_below_expected":
        return (
            f"{subject} positivity {_pct(g['rate'])} ({g['positive']}/{g['valid']}) is below the "
            f"expected {_pct(g['expected_low'])}-{_pct(g['expected_high'])}{pq}. "
            f"{ADVICE.get(subject, 'Review the assay and case mix.')}"
        )
    if rule in ("rare_driver_window", "rare_driver_below_expected"):
        against = (
            f"the rest of the network's {_pct(g['reference_rate'])}"
            if rule == "rare_driver_window"
            else f"the expected minimum {_pct(g['expected_low'])}"
        )
        return (
            f"{subject} over the last {g['periods']} periods: {g['positive']}/{g['valid']} positive "
            f"({_pct(g['rate'])}), below {against}{pq}.{_missed(g)} "
            f"{ADVICE.get(subject, 'Review the assay and case mix.')}"
        )
    if rule == "method_class":
        return (
            f"{subject}: labs testing it without an RNA-capable method ({g['method_class']}, "
            f"{g['class_sites']} lab(s)) found {g['class_positive']}/{g['class_valid']} "
            f"({_pct(g['class_rate'])}) against {g['reference_positive']}/{g['reference_valid']} "
            f"({_pct(g['reference_rate'])}) in RNA-capable labs{pq}. "
            f"{ADVICE.get(subject, 'Consider an RNA-capable method.')}"
        )
    if rule == "failure_rate":
        return (
            f"{subject.capitalize()} failure rate {_pct(g['rate'])} ({g['failed']}/{g['tests']} tests; "
            f"95% CI {_pct(g['ci95'][0])}-{_pct(g['ci95'][1])}) exceeds the standard's maximum of "
            f"{_pct(g['max'])}{pq}. Patients with failed {subject} samples go untested: review "
            "specimen adequacy (rapid on-site evaluation, cell blocks) and consider plasma testing."
        )
    if rule == "turnaround":
        return (
            f"Only {_pct(g['share_within_target'])} of tests ({g['within_target']}/{g['tests']}) were "
            f"reported within {g['target_days']} working days (goal {_pct(g['goal'])}){pq}; median "
            f"{g['median']}, 90th percentile {g['p90']} working days. Patients wait for treatment "
            "decisions: look for batching, send-outs and re-biopsies."
        )
    if rule == "panel_coverage":
        return (
            f"Only {_pct(g['share'])} of non-squamous patients ({g['with_all_required']}/"
            f"{g['patients']}) had a valid result for every required biomarker (target "
            f"{_pct(g['target'])}){pq}; least covered: {', '.join(g['least_covered']) or 'none'}. "
            "Move to a panel that covers the guideline's drivers."
        )
    if rule == "concordance":
        return (
            f"{subject}: {g['measure']} {g['agreeing']}/{g['pairs']} "
            f"(a={g['a']}, b={g['b']}, c={g['c']}, d={g['d']}) is below the minimum {g['minimum']}"
            f"{pq}. Review discordant cases and the index assay's validation."
        )
    if rule == "eqa":
        parts = ", ".join(
            f"{name} {_pct(p['score'])} (pass {_pct(p['pass_share'])})"
            for name, p in g.get("failed_subschemes", {}).items()
        )
        return (
            f"EQA round {subject} not passed: {g['points']}/{g['max_points']} ({_pct(g['score'])}); "
            f"sub-schemes not passed: {parts or 'none'}; {'; '.join(g.get('not_correct', []))}. "
            "Review these samples' wet-lab and reporting steps."
        )
    if rule == "eqa_persistent_poor":
        return (
            f"Persistent poor EQA performance: poor in {g['poor_rounds']} of the last {g['rounds']} "
            f"rounds (rule {g['rule']}). Carry out a root-cause analysis with corrective and "
            "preventive action (CAPA)."
        )
    return f"{rule}: {subject}{pq}."


def write(benchmark: dict[str, Any]) -> dict[str, Any]:
    """Fills every flag's `message` in place (site sections share the flag objects)."""
    for f in benchmark["flags"]:
        f["message"] = message(f)
    for entry in benchmark["sites"].values():
        for f in entry["flags"]:
            f["message"] = message(f)
    return benchmark
