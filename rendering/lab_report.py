"""The individual lab report (HTML; `rendering.pdf` prints it), as an EQA scheme's individual
report: status per indicator at a glance, each indicator against the network and the standard,
the lab marked on every funnel, positivity by method class, turnaround and failure against the
network, concordance with counts, EQA per sub-scheme, history, patients likely missed, corrective
actions, and what to do. Input: a lab view (coordinator/lab_view.py); peers are never named."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from functools import lru_cache
from typing import Any

from jinja2 import Template
from markupsafe import Markup

from rendering import svg
from rendering.environment import environment
from rendering.flag_text import sentence  # noqa: F401 - used by the network report too
from rendering.i18n import Reader
from rendering.labels import METHOD_CLASSES, RARE_DRIVERS, label, rag
from rendering.plots import Funnel, funnel, points_of

PERSISTENT_RULES = ("positivity_funnel", "positivity_below_expected")


def indicator_key(flag: dict) -> tuple[str, str]:
    """The indicator a flag is about; both positivity rules are one indicator (the biomarker)."""
    rule = flag["rule"]
    return ("positivity" if rule in PERSISTENT_RULES else rule, flag["subject"])


def _level_status(level: str | None) -> str:
    return level or "ok"


def glance(reader: Reader, view: dict) -> list[dict]:
    """One row per indicator: value, network, standard, red/amber/green, persistent mark."""
    site, net = view["site"], view["network"]
    persistent = {(m["indicator"], m["subject"]) for m in view.get("persistent", [])}
    worst: dict[tuple[str, str], str] = {}
    for f in site["flags"]:
        key = indicator_key(f)
        if worst.get(key) != "alarm":
            worst[key] = f["level"]
    rows = []
    for biomarker, p in site["positivity"].items():
        key = ("positivity", biomarker)
        expected = p.get("expected")
        rows.append(
            {
                "group": reader._("Positivity"),
                "name": label(reader, "biomarker", biomarker),
                "value": f"{reader.pct(p['rate'])} ({reader.num(p['positive'])}/{reader.num(p['valid'])})",
                "network": reader.pct(p["network_rate"]),
                "standard": f"{reader.pct(expected[0])}–{reader.pct(expected[1])}"
                if expected
                else "",
                "status": label(reader, "status", p["status"]),
                "rag": rag(worst.get(key, p["status"])),
                "persistent": key in persistent,
                "anchor": f"funnel-{biomarker}",
            }
        )
    for specimen, f in site["failure"].items():
        key = ("failure_rate", specimen)
        network = net["failure"].get(specimen, {})
        rows.append(
            {
                "group": reader._("Failure rate"),
                "name": label(reader, "specimen", specimen),
                "value": f"{reader.pct(f['rate'])} ({reader.num(f['failed'])}/{reader.num(f['tests'])})",
                "network": reader.pct(network.get("rate")),
                "standard": reader._("at most {max}").format(max=reader.pct(f["max"]))
                if f.get("max") is not None
                else "",
                "status": label(reader, "status", f["status"]),
                "rag": rag(_level_status(worst.get(key, f["status"]))),
                "persistent": key in persistent,
                "anchor": "failure",
            }
        )
    t = site["turnaround"]
    if t.get("tests"):
        key = ("turnaround", "all specimens")
        rows.append(
            {
                "group": reader._("Turnaround"),
                "name": reader._("within {days} working days").format(days=t["target_days"]),
                "value": reader.pct(t["share_within_target"]),
                "network": reader.pct(net["turnaround"].get("share_within_target")),
                "standard": reader._("at least {goal}").format(goal=reader.pct(t["goal"])),
                "status": label(reader, "status", t["status"]),
                "rag": rag(worst.get(key, t["status"])),
                "persistent": key in persistent,
                "anchor": "turnaround",
            }
        )
    panel = site["panel"]
    if panel.get("patients"):
        key = ("panel_coverage", "required panel")
        rows.append(
            {
                "group": reader._("Panel"),
                "name": reader._("every required biomarker"),
                "value": f"{reader.pct(panel['share'])} ({reader.num(panel['with_all_required'])}/{reader.num(panel['patients'])})",
                "network": "",
                "standard": reader._("at least {goal}").format(goal=reader.pct(panel["target"])),
                "status": label(reader, "status", panel.get("status", "ok")),
                "rag": rag(worst.get(key, panel.get("status", "ok"))),
                "persistent": key in persistent,
                "anchor": "panel",
            }
        )
    for c in site["concordance"]:
        if c.get("withheld"):
            continue
        subject = f"{c['biomarker']} {c['index_method']} vs {c['comparator_method']}"
        key = ("concordance", subject)
        rows.append(
            {
                "group": reader._("Concordance"),
                "name": f"{label(reader, 'biomarker', c['biomarker'])}: {label(reader, 'method', c['index_method'])} / {label(reader, 'method', c['comparator_method'])}",
                "value": f"PPA {reader.pct(c['ppa'])}, NPA {reader.pct(c['npa'])}",
                "network": "",
                "standard": "",
                "status": label(reader, "status", worst.get(key, "ok")),
                "rag": rag(worst.get(key, "ok")),
                "persistent": key in persistent,
                "anchor": "concordance",
            }
        )
    for round_id, e in site.get("eqa", {}).items():
        rows.append(
            {
                "group": reader._("EQA"),
                "name": round_id,
                "value": f"{e['points']}/{e['max_points']} ({reader.pct(e['score'])})",
                "network": "",
                "standard": "",
                "status": reader._("pass") if e["passed"] else reader._("fail"),
                "rag": "green" if e["passed"] else "red",
                "persistent": ("eqa", round_id) in persistent,
                "anchor": "eqa",
            }
        )
    return rows


def likely_missed(reader: Reader, view: dict) -> tuple[list[dict], bool]:
    """Patients likely missed for rare drivers: the benchmark method's estimate when it gives one
    (with its interval and likely cause), else (network rate x valid results) - positives for a
    rare driver whose positivity is below the network's limits. Returns (rows, from the method)."""
    site = view["site"]
    given = site.get("patients_likely_missed") or site.get("likely_missed")
    if isinstance(given, dict) and given:
        rows = []
        for biomarker, m in sorted(given.items()):
            if not isinstance(m, dict):
                continue
            interval = m.get("interval") or m.get("ci95") or m.get("interval95")
            rows.append(
                {
                    "biomarker": label(reader, "biomarker", biomarker),
                    "estimate": reader.num(m.get("estimate", m.get("missed")), 1),
                    "interval": f"{reader.num(interval[0], 1)}–{reader.num(interval[1], 1)}"
                    if interval
                    else "",
                    "cause": str(m.get("likely_cause") or m.get("cause") or ""),
                }
            )
        return rows, True
    rows = []
    for biomarker in RARE_DRIVERS:
        p = site["positivity"].get(biomarker)
        if not p or not p["status"].endswith("_low"):
            continue
        expected = p["network_rate"] * p["valid"]
        rows.append(
            {
                "biomarker": label(reader, "biomarker", biomarker),
                "estimate": reader.num(max(0.0, expected - p["positive"]), 1),
                "interval": "",
                "cause": _method_cause(reader, view, biomarker),
            }
        )
    return rows, False


def _method_cause(reader: Reader, view: dict, biomarker: str) -> str:
    own = view.get("method_class", {}).get(biomarker, {})
    if own.get("dna_only", [0, 0])[1] and not own.get("rna_capable", [0, 0])[1]:
        return reader._("tested by DNA-only methods")
    return ""


def method_rows(reader: Reader, view: dict) -> list[dict]:
    rows = []
    own_all, net_all = view.get("method_class", {}), view["network"].get("method_class", {})
    for biomarker in sorted(set(own_all) | set(net_all), key=lambda b: (b not in RARE_DRIVERS, b)):
        for cls in METHOD_CLASSES:
            own, net = own_all.get(biomarker, {}).get(cls), net_all.get(biomarker, {}).get(cls)
            if not own and not net:
                continue
            rows.append(
                {
                    "biomarker": biomarker,
                    "class": label(reader, "method_class", cls),
                    "own": own,
                    "own_rate": own[0] / own[1] if own and own[1] else None,
                    "own_text": share_text(reader, *own) if own else "—",
                    "network": net,
                    "network_rate": net[0] / net[1] if net and net[1] else None,
                    "network_text": share_text(reader, *net) if net else "—",
                }
            )
    return rows


@lru_cache(maxsize=4096)  # the network's shares are the same on every lab's page
def share_text(reader: Reader, positive: int, valid: int) -> str:
    """A share with its counts: "2.25% (3,353/149,200)"."""
    return f"{reader.pct(positive / valid if valid else None, 2)} ({reader.num(positive)}/{reader.num(valid)})"


def eqa_schemes(site: dict) -> dict[str, dict[str, dict[str, int]]]:
    """{round: {biomarker (the sub-scheme): {outcome: count}}}."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for round_id, e in site.get("eqa", {}).items():
        by: dict[str, dict[str, int]] = {}
        for key, outcome in sorted(e.get("outcomes", {}).items()):
            biomarker = key.rsplit("/", 1)[-1]
            by.setdefault(biomarker, {}).setdefault(outcome, 0)
            by[biomarker][outcome] += 1
        out[round_id] = by
    return out


def action_state(action: dict, today: dt.date) -> str:
    if action["status"] == "closed":
        return "closed"
    return "overdue" if dt.date.fromisoformat(action["due"]) < today else "open"


# Where each funnel goes in a page's text while the page is rendered: a key drawn at random for
# this process (a lab's own text, written before, cannot hold it), then the drawing's number.
_SPLICE = "\x00" + secrets.token_hex(16) + ":"
_SPLICED = re.compile(re.escape(_SPLICE) + r"(\d+)\x00")


def funnels_for(
    reader: Reader, view: dict, base: dict[str, Funnel] | None
) -> dict[str, tuple[Funnel, str]]:
    """Each biomarker's funnel and the mark of this lab's point on it (`Funnel.mark`), the
    funnels drawn here from the anonymous peers unless the caller drew the network's once for all
    labs."""
    site, name = view["site"], view["site"]["site_id"]
    out = {}
    for biomarker, p in site["positivity"].items():
        curve = view["funnel_curves"].get(biomarker)
        if curve is None:
            continue
        if base is not None and biomarker in base:
            drawn = base[biomarker]
        else:
            peers = {
                f"peer-{i}": {"positivity": peer["positivity"]}
                for i, peer in enumerate(view.get("peers", []))
            }
            for entry in peers.values():
                for q in entry["positivity"].values():
                    q.setdefault("status", "in_control")
            points = points_of(peers, biomarker, named=False) + [
                (None, p["valid"], p["rate"], p["status"])
            ]
            drawn = funnel(
                reader,
                biomarker,
                view["network"]["positivity"][biomarker],
                curve,
                points,
                name_points=False,
            )
        out[biomarker] = (drawn, drawn.mark(p["valid"], p["rate"], name))
    return out


def render(
    view: dict,
    lang: str = "en",
    funnels: dict[str, Funnel] | None = None,
    today: dt.date | None = None,
    network_link: str | None = None,
) -> str:
    """The lab's report page (`view`: coordinator/lab_view.py)."""
    return render_utf8(view, lang, funnels, today, network_link).decode("utf-8")


def render_utf8(
    view: dict,
    lang: str = "en",
    funnels: dict[str, Funnel] | None = None,
    today: dt.date | None = None,
    network_link: str | None = None,
) -> bytes:
    """The lab's report page in UTF-8 (`render_pieces` joined)."""
    return b"".join(render_pieces(view, lang, funnels, today, network_link))


def render_pieces(
    view: dict,
    lang: str = "en",
    funnels: dict[str, Funnel] | None = None,
    today: dt.date | None = None,
    network_link: str | None = None,
) -> list[bytes]:
    """The lab's report page in UTF-8, in pieces to write one after the other. The template
    writes a short key where each funnel goes; the funnel's drawing, encoded once for every lab
    (`Funnel.utf8_halves`), goes there around this lab's mark: nine tenths of a page are never
    copied through the template, nor encoded again, nor joined, for each lab."""
    template, context, marked = _page(view, lang, funnels, today, network_link)
    parts = _SPLICED.split(template.render(context))
    out = [parts[0].encode("utf-8")]
    for i in range(1, len(parts), 2):
        drawn, mark = marked[int(parts[i])]
        head, tail = drawn.utf8_halves
        out += (head, mark.encode("utf-8"), tail, parts[i + 1].encode("utf-8"))
    return out


def _page(
    view: dict,
    lang: str,
    funnels: dict[str, Funnel] | None,
    today: dt.date | None,
    network_link: str | None,
) -> tuple[Template, dict[str, Any], list[tuple[Funnel, str]]]:
    """The page's template and context, and the funnels (with this lab's mark) to join in where
    the context's funnels hold their keys (`render_utf8`)."""
    reader = Reader(lang)
    _ = reader._
    site = view["site"]
    day = today or dt.date.today()
    own_name, network_name = site["site_id"], _("network")
    history = view.get("history", {})
    periods = history.get("periods", [])
    panels = [
        (
            label(reader, "biomarker", b),
            own,
            history.get("network", {}).get(b, [None] * len(periods)),
        )
        for b, own in history.get("own", {}).items()
    ]
    net_t = view["network"]["turnaround"]
    charts: dict[str, Any] = {
        "history": svg.small_multiples(
            panels,
            periods,
            own_name,
            network_name,
            _("Positivity by period"),
            fmt=lambda v: reader.pct(v, 1),
        )
        if panels
        else None,
        "turnaround": svg.distribution(
            site["turnaround"].get("histogram", []),
            net_t.get("histogram", []),
            site["turnaround"].get("target_days", 10),
            own_name,
            network_name,
            _("working days from receipt to report"),
            _("Turnaround distribution"),
        )
        if site["turnaround"].get("tests")
        else None,
        "failure": svg.paired_bars(
            [
                svg.Bar(
                    label(reader, "specimen", s),
                    f["rate"],
                    view["network"]["failure"].get(s, {}).get("rate"),
                    reader.pct(f["rate"]),
                    reader.pct(view["network"]["failure"].get(s, {}).get("rate")),
                )
                for s, f in site["failure"].items()
            ],
            own_name,
            network_name,
            _("Failure rate by specimen"),
        )
        if site["failure"]
        else None,
    }
    methods = method_rows(reader, view)
    rare = [
        r
        for r in methods
        if r["biomarker"] in RARE_DRIVERS
        and r["class"]
        in (label(reader, "method_class", "dna_only"), label(reader, "method_class", "rna_capable"))
    ]
    charts["methods"] = (
        svg.paired_bars(
            [
                svg.Bar(
                    f"{label(reader, 'biomarker', r['biomarker'])} · {r['class']}",
                    r["own_rate"],
                    r["network_rate"],
                    reader.pct(r["own_rate"], 2),
                    reader.pct(r["network_rate"], 2),
                )
                for r in rare
            ],
            own_name,
            network_name,
            _("Positivity by method class"),
        )
        if rare
        else None
    )
    actions = [{**a, "state": action_state(a, day)} for a in view.get("actions", [])]
    missed, from_method = likely_missed(reader, view)
    flags = sorted(site["flags"], key=lambda f: (f["level"] != "alarm", f["rule"], f["subject"]))
    todo = [{"flag": f, "text": sentence(reader, f, site)} for f in flags]
    marked = funnels_for(reader, view, funnels)
    env = environment(reader)
    return (
        env.get_template("lab_report.html"),
        dict(
            v=view,
            site=site,
            glance=glance(reader, view),
            funnels={b: Markup(f"{_SPLICE}{i}\x00") for i, b in enumerate(marked)},
            charts=charts,
            methods=methods,
            missed=missed,
            missed_from_method=from_method,
            eqa=eqa_schemes(site),
            actions=actions,
            todo=todo,
            persistent=view.get("persistent", []),
            flag_history=history.get("flags", {}),
            today=day.isoformat(),
            network_link=network_link,
        ),
        list(marked.values()),
    )
