"""Human names for the identifiers the benchmark uses (never `in_control`, `alarm_low`,
`tissue_plasma` or `ngs_dna_rna` on a page). Unknown identifiers are shown as they are."""

from __future__ import annotations

from functools import lru_cache

from rendering.i18n import N_, Reader

BIOMARKERS = {
    "EGFR": N_("EGFR"),
    "ALK": N_("ALK"),
    "ROS1": N_("ROS1"),
    "MET_EX14": N_("MET exon 14 skipping"),
    "MET_AMP": N_("MET amplification"),
    "ERBB2": N_("ERBB2 (HER2)"),
    "RET": N_("RET"),
    "KRAS_G12C": N_("KRAS G12C"),
    "KRAS": N_("KRAS"),
    "BRAF_V600E": N_("BRAF V600E"),
    "NTRK": N_("NTRK"),
    "PD_L1": N_("PD-L1"),
}
# Drivers a DNA-only assay tends to miss: the story of positivity by method class.
RARE_DRIVERS = ("MET_EX14", "ALK", "ROS1", "RET", "NTRK", "ERBB2", "BRAF_V600E", "KRAS_G12C")
METHODS = {
    "ngs_dna": N_("DNA NGS"),
    "ngs_rna": N_("RNA NGS"),
    "ngs_dna_rna": N_("DNA + RNA NGS"),
    "pcr": N_("PCR"),
    "ddpcr": N_("digital PCR"),
    "fish": N_("FISH"),
    "ihc": N_("IHC"),
    "other": N_("other method"),
    "all": N_("all methods"),
    "any": N_("methods merged"),
}
# Method classes: what a method can see.
METHOD_CLASS = {
    "ngs_dna": "dna_only",
    "pcr": "dna_only",
    "ddpcr": "dna_only",
    "ngs_rna": "rna_capable",
    "ngs_dna_rna": "rna_capable",
    "fish": "cytogenetic",
    "ihc": "protein",
}
METHOD_CLASSES = {
    "dna_only": N_("DNA-only"),
    "rna_capable": N_("RNA-capable"),
    "cytogenetic": N_("FISH"),
    "protein": N_("IHC"),
}
SPECIMENS = {
    "tissue": N_("tissue"),
    "cytology": N_("cytology"),
    "plasma": N_("plasma"),
    "any": N_("specimens merged"),
    "all specimens": N_("all specimens"),
}
STATUS = {
    "in_control": N_("within limits"),
    "alert_low": N_("low (outside 95% limits)"),
    "alert_high": N_("high (outside 95% limits)"),
    "alarm_low": N_("very low (outside 99.8% limits)"),
    "alarm_high": N_("very high (outside 99.8% limits)"),
    "withheld": N_("withheld by the lab's disclosure policy"),
    "no_data": N_("no valid results"),
    "ok": N_("meets the standard"),
    "alert": N_("alert"),
    "alarm": N_("alarm"),
}
LEVELS = {"ok": N_("no flags"), "alert": N_("alert"), "alarm": N_("alarm")}
RULES = {
    "positivity_funnel": N_("positivity against the network"),
    "positivity_below_expected": N_("positivity against the expected range"),
    "method_class": N_("positivity by method class"),
    "rare_driver_window": N_("rare driver over four quarters"),
    "eqa_persistent_poor": N_("persistent poor EQA performance"),
    "failure_rate": N_("failure rate"),
    "turnaround": N_("turnaround"),
    "panel_coverage": N_("panel coverage"),
    "concordance": N_("concordance"),
    "eqa": N_("external quality assessment"),
}
CONCORDANCE_KINDS = {
    "inter_method": N_("between methods"),
    "tissue_plasma": N_("tissue vs plasma"),
}
EQA_OUTCOMES = {
    "correct": N_("correct"),
    "false_positive": N_("false positive"),
    "false_negative": N_("false negative"),
    "wrong_variant": N_("wrong variant"),
    "technical_failure": N_("technical failure"),
    "not_reported": N_("not reported"),
}
ACTION_STATES = {"open": N_("open"), "closed": N_("closed"), "overdue": N_("overdue")}
# Red/amber/green, as national clinical audits show status at a glance.
RAG = {
    "in_control": "green",
    "ok": "green",
    "alert_low": "amber",
    "alert_high": "amber",
    "alert": "amber",
    "alarm_low": "red",
    "alarm_high": "red",
    "alarm": "red",
}

TABLES = {
    "biomarker": BIOMARKERS,
    "method": METHODS,
    "method_class": METHOD_CLASSES,
    "specimen": SPECIMENS,
    "status": STATUS,
    "level": LEVELS,
    "rule": RULES,
    "kind": CONCORDANCE_KINDS,
    "outcome": EQA_OUTCOMES,
    "action": ACTION_STATES,
}


@lru_cache(maxsize=8192)  # a page asks for a hundred and fifty, the same on every page
def label(reader: Reader, table: str, key: str | None) -> str:
    """The reader's word for `key` in `table` (biomarker, method, specimen, status, ...)."""
    if key is None:
        return ""
    known = TABLES[table].get(key)
    if known is None and table == "method":
        known = SPECIMENS.get(key)  # tissue-vs-plasma tables name specimens as their "methods"
    return reader._(known) if known else key


def rag(status: str | None) -> str:
    return RAG.get(status or "", "grey")
