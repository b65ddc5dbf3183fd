"""A flag as a sentence in the reader's language, rebuilt from its rule and figures, with advice a
lab director can act on. A rule this module does not know keeps the benchmark's English message."""

from __future__ import annotations

from typing import Any

from rendering.i18n import N_, Reader
from rendering.labels import label

ADVICE_LOW = {
    "MET_EX14": N_(
        "DNA-only panels miss MET exon 14 skipping at splice sites: test DNA-negative "
        "non-squamous cases with RNA-based or DNA + RNA NGS."
    ),
    "ALK": N_(
        "Check ALK IHC (D5F3) and FISH scoring against an EQA scheme, and confirm equivocal IHC "
        "by FISH or RNA NGS."
    ),
    "ROS1": N_("ROS1 fusions are best found by RNA NGS or FISH; confirm IHC screens."),
    "RET": N_("RET fusions are best found by RNA-based NGS."),
    "NTRK": N_("NTRK fusions are best found by RNA-based NGS; pan-TRK IHC only as a screen."),
    "EGFR": N_(
        "Check tumour content and the assay's limit of detection; review cases with low tumour "
        "fraction."
    ),
}
ADVICE_LOW_OTHER = N_("Review the assay and the case mix.")
ADVICE_HIGH = N_("Check for false positives and for a case mix enriched in this driver.")


def _site_failures(site: dict) -> list[str]:
    return sorted(
        s for s, f in site.get("failure", {}).items() if f.get("status") not in (None, "ok")
    )


def sentence(reader: Reader, flag: dict, site: dict | None = None) -> str:
    """The flag's finding and what to do, in the reader's language."""
    _ = reader._
    fig: dict[str, Any] = flag.get("figures") or {}
    rule, subject = flag.get("rule"), flag.get("subject", "")
    site = site or {}
    try:
        if rule == "positivity_funnel":
            low = (fig["rate"] or 0.0) < fig["network_rate"]
            rate, limit = reader.pct_pair(fig["rate"], fig["limit"])
            text = _(
                "{biomarker} positivity {rate} ({positive} of {valid}) is {direction} the "
                "network's {network}, beyond the {confidence} funnel limit ({limit})."
            ).format(
                biomarker=label(reader, "biomarker", subject),
                rate=rate,
                positive=reader.num(fig["positive"]),
                valid=reader.num(fig["valid"]),
                direction=_("below") if low else _("above"),
                network=reader.pct(fig["network_rate"]),
                confidence="99.8%" if flag.get("level") == "alarm" else "95%",
                limit=limit,
            )
            advice = _(ADVICE_LOW.get(subject, ADVICE_LOW_OTHER)) if low else _(ADVICE_HIGH)
            return f"{text} {advice}"
        if rule == "positivity_below_expected":
            expected = site.get("positivity", {}).get(subject, {}).get("expected") or [
                fig["expected_low"],
                None,
            ]
            text = _(
                "{biomarker} positivity {rate} ({positive} of {valid}; 95% CI {low} to {high}) lies "
                "entirely below the expected range, which starts at {expected}."
            ).format(
                biomarker=label(reader, "biomarker", subject),
                rate=reader.pct(fig["rate"]),
                positive=reader.num(fig["positive"]),
                valid=reader.num(fig["valid"]),
                low=reader.pct(fig["ci95"][0]),
                high=reader.pct(fig["ci95"][1]),
                expected=reader.pct(expected[0]),
            )
            return f"{text} {_(ADVICE_LOW.get(subject, ADVICE_LOW_OTHER))}"
        if rule == "failure_rate":
            text = _(
                "The {specimen} failure rate {rate} ({failed} of {tests}; 95% CI {low} to {high}) "
                "exceeds the standard's maximum of {max}."
            ).format(
                specimen=label(reader, "specimen", subject),
                rate=reader.pct(fig["rate"]),
                failed=reader.num(fig["failed"]),
                tests=reader.num(fig["tests"]),
                low=reader.pct(fig["ci95"][0]),
                high=reader.pct(fig["ci95"][1]),
                max=reader.pct(fig["max"]),
            )
            advice = _(
                "Patients whose samples fail go untested: review specimen adequacy (rapid on-site "
                "evaluation, cell blocks) and consider plasma testing."
            )
            return f"{text} {advice}"
        if rule == "turnaround":
            text = _(
                "Only {share} of tests were reported within {days} working days (goal {goal}); "
                "median {median}, 90th percentile {p90} working days."
            ).format(
                share=reader.pct(fig["share_within_target"]),
                days=site.get("turnaround", {}).get("target_days", 10),
                goal=reader.pct(fig["goal"]),
                median=reader.num(fig["median"], 1),
                p90=reader.num(fig["p90"], 1),
            )
            advice = _(
                "Patients wait for treatment decisions: look for batching, send-outs and re-biopsies."
            )
            return f"{text} {advice}"
        if rule == "panel_coverage":
            coverage = site.get("panel", {}).get("biomarkers", {})
            least = sorted(fig.get("least_covered") or [], key=lambda b: (coverage.get(b, 0.0), b))
            shown = ", ".join(
                f"{label(reader, 'biomarker', b)} {reader.pct(coverage[b])}"
                if b in coverage
                else label(reader, "biomarker", b)
                for b in least[:3]
            )
            text = _(
                "Only {share} of non-squamous patients ({complete} of {patients}) had a valid "
                "result for every required biomarker (target {target}); least covered: {least}."
            ).format(
                share=reader.pct(fig["share"]),
                complete=reader.num(fig["with_all_required"]),
                patients=reader.num(fig["patients"]),
                target=reader.pct(fig["target"]),
                least=shown or _("none"),
            )
            failing = _site_failures(site)
            if failing:
                advice = _(
                    "The gap follows failed samples ({specimens}): fix specimen adequacy before "
                    "changing the panel."
                ).format(specimens=", ".join(label(reader, "specimen", s) for s in failing))
            else:
                advice = _("Move to a panel that covers the guideline's drivers.")
            return f"{text} {advice}"
        if rule == "concordance":
            kappa = fig.get("kappa")
            text = _(
                "{subject}: the methods agree poorly (PPA {ppa}, NPA {npa}, kappa {kappa}; "
                "a={a}, b={b}, c={c}, d={d})."
            ).format(
                subject=comparison(reader, subject),
                ppa=reader.pct(fig.get("ppa")),
                npa=reader.pct(fig.get("npa")),
                kappa=_("n/a") if kappa is None else reader.num(kappa, 2),
                a=fig["a"],
                b=fig["b"],
                c=fig["c"],
                d=fig["d"],
            )
            advice = _("Review the discordant cases and the index assay's validation.")
            return f"{text} {advice}"
        if rule == "eqa":
            text = _(
                "EQA round {round} not passed: {points} of {max} points ({score}); {errors} "
                "errors, {failures} technical failures."
            ).format(
                round=subject,
                points=fig["points"],
                max=fig["max_points"],
                score=reader.pct(fig["score"]),
                errors=fig["errors"],
                failures=fig["technical_failures"],
            )
            advice = _("Review these samples' wet-lab and reporting steps.")
            return f"{text} {advice}"
    except (KeyError, TypeError, IndexError):
        pass
    return str(flag.get("message", ""))


def comparison(reader: Reader, value: str) -> str:
    """A concordance subject ("ALK ihc vs fish") in words."""
    parts = value.split(" ")
    if len(parts) == 4 and parts[2] == "vs":
        return (
            f"{label(reader, 'biomarker', parts[0])}: {label(reader, 'method', parts[1])} / "
            f"{label(reader, 'method', parts[3])}"
        )
    return value


def subject(reader: Reader, flag: dict) -> str:
    """The flag's subject in words (a biomarker, a specimen, ...)."""
    rule, value = flag.get("rule"), flag.get("subject", "")
    if rule == "concordance":
        return comparison(reader, value)
    if rule in ("positivity_funnel", "positivity_below_expected"):
        return label(reader, "biomarker", value)
    if rule in ("failure_rate", "turnaround"):
        return label(reader, "specimen", value)
    if rule == "panel_coverage":
        return reader._("required panel")
    return str(value)


def indicator_name(reader: Reader, mark: dict) -> str:
    """A persistent mark's indicator in words ("MET exon 14 skipping positivity")."""
    ind, value = mark["indicator"], mark["subject"]
    if ind == "positivity":
        return reader._("{biomarker} positivity").format(
            biomarker=label(reader, "biomarker", value)
        )
    if ind == "failure_rate":
        return reader._("{specimen} failure rate").format(specimen=label(reader, "specimen", value))
    return f"{label(reader, 'rule', ind)} · {subject(reader, {'rule': ind, 'subject': value})}"


def kappa_text(reader: Reader, t: dict) -> str:
    """Cohen's kappa as a reader can use it: not "0.00 (0.00–0.00)" when it cannot be computed."""
    kappa = t.get("kappa")
    a, b, c, d = (t.get(k, 0) for k in ("a", "b", "c", "d"))
    if kappa is None or 0 in (a + b, c + d, a + c, b + d):
        return reader._("not computable: a method gave only one kind of result")
    ci = t.get("kappa_ci95") or [None, None]
    if not t.get("kappa_se") or ci[0] is None or ci[1] - ci[0] < 0.005:
        return f"{reader.num(kappa, 2)} ({reader._('no interval: too few discordant pairs')})"
    return f"{reader.num(kappa, 2)} ({reader.num(ci[0], 2)}–{reader.num(ci[1], 2)})"
