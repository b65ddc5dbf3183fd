"""The canonical record and the built-in synonyms (English and Chinese) for LIMS exports.

Each canonical field has a set of allowed values; `normalise(field, text)` returns the canonical
value or None. Synonyms are compared after case folding and whitespace squeezing. A site adds its
own words in a mapping file (see node/mapping.py).
"""

from __future__ import annotations

import re

FIELDS = (
    "test_id",
    "patient_id",
    "received_date",
    "reported_date",
    "specimen",
    "histology",
    "method",
    "biomarker",
    "result",
    "variant",
    "vaf",
    "eqa_round",
    "eqa_sample",
)
REQUIRED = FIELDS[:9]
OPTIONAL = FIELDS[9:]

SPECIMENS = ("tissue", "cytology", "plasma", "other")
HISTOLOGIES = ("adenocarcinoma", "squamous", "large_cell", "sarcomatoid", "nos", "other")
METHODS = ("ngs_dna", "ngs_rna", "ngs_dna_rna", "pcr", "ddpcr", "fish", "ihc", "other")
BIOMARKERS = (
    "EGFR",
    "ALK",
    "ROS1",
    "MET_EX14",
    "MET_AMP",
    "ERBB2",
    "RET",
    "KRAS_G12C",
    "KRAS",
    "BRAF_V600E",
    "NTRK",
)
RESULTS = ("positive", "negative", "failed", "equivocal")

VOCABULARY: dict[str, tuple[str, ...]] = {
    "specimen": SPECIMENS,
    "histology": HISTOLOGIES,
    "method": METHODS,
    "biomarker": BIOMARKERS,
    "result": RESULTS,
}

# Column headers commonly seen in LIMS exports, folded: canonical field.
HEADER_SYNONYMS: dict[str, str] = {
    "检测编号": "test_id",
    "检测号": "test_id",
    "样本编号": "test_id",
    "标本编号": "test_id",
    "病理号": "test_id",
    "sample id": "test_id",
    "accession": "test_id",
    "test id": "test_id",
    "患者id": "patient_id",
    "患者编号": "patient_id",
    "病人编号": "patient_id",
    "住院号": "patient_id",
    "病历号": "patient_id",
    "patient id": "patient_id",
    "mrn": "patient_id",
    "接收日期": "received_date",
    "收样日期": "received_date",
    "送检日期": "received_date",
    "received": "received_date",
    "date received": "received_date",
    "报告日期": "reported_date",
    "发报告日期": "reported_date",
    "reported": "reported_date",
    "report date": "reported_date",
    "date reported": "reported_date",
    "标本类型": "specimen",
    "样本类型": "specimen",
    "specimen type": "specimen",
    "sample type": "specimen",
    "组织学类型": "histology",
    "病理类型": "histology",
    "组织学": "histology",
    "病理诊断": "histology",
    "检测方法": "method",
    "方法": "method",
    "platform": "method",
    "assay": "method",
    "基因": "biomarker",
    "检测基因": "biomarker",
    "靶点": "biomarker",
    "gene": "biomarker",
    "target": "biomarker",
    "结果": "result",
    "检测结果": "result",
    "call": "result",
    "interpretation": "result",
    "变异": "variant",
    "突变类型": "variant",
    "变异类型": "variant",
    "mutation": "variant",
    "丰度": "vaf",
    "突变丰度": "vaf",
    "vaf(%)": "vaf",
    "vaf %": "vaf",
    "allele fraction": "vaf",
    "eqa轮次": "eqa_round",
    "室间质评轮次": "eqa_round",
    "eqa样本": "eqa_sample",
    "室间质评样本": "eqa_sample",
}

VALUE_SYNONYMS: dict[str, dict[str, str]] = {
    "result": {
        "pos": "positive",
        "+": "positive",
        "detected": "positive",
        "mutant": "positive",
        "mutation detected": "positive",
        "阳性": "positive",
        "突变型": "positive",
        "突变": "positive",
        "检出": "positive",
        "融合": "positive",
        "扩增": "positive",
        "neg": "negative",
        "-": "negative",
        "not detected": "negative",
        "wild type": "negative",
        "wildtype": "negative",
        "wt": "negative",
        "阴性": "negative",
        "野生型": "negative",
        "未检出": "negative",
        "未检测到": "negative",
        "fail": "failed",
        "failure": "failed",
        "qns": "failed",
        "insufficient": "failed",
        "失败": "failed",
        "检测失败": "failed",
        "样本不合格": "failed",
        "质控不合格": "failed",
        "indeterminate": "equivocal",
        "inconclusive": "equivocal",
        "可疑": "equivocal",
        "不确定": "equivocal",
        "临界": "equivocal",
    },
    "specimen": {
        "组织": "tissue",
        "组织标本": "tissue",
        "手术标本": "tissue",
        "活检": "tissue",
        "biopsy": "tissue",
        "resection": "tissue",
        "ffpe": "tissue",
        "细胞学": "cytology",
        "细胞": "cytology",
        "胸水": "cytology",
        "细胞蜡块": "cytology",
        "cell block": "cytology",
        "effusion": "cytology",
        "fna": "cytology",
        "血浆": "plasma",
        "血液": "plasma",
        "外周血": "plasma",
        "ctdna": "plasma",
        "liquid biopsy": "plasma",
        "blood": "plasma",
        "其他": "other",
    },
    "histology": {
        "腺癌": "adenocarcinoma",
        "肺腺癌": "adenocarcinoma",
        "adeno": "adenocarcinoma",
        "luad": "adenocarcinoma",
        "鳞癌": "squamous",
        "鳞状细胞癌": "squamous",
        "肺鳞癌": "squamous",
        "squamous cell carcinoma": "squamous",
        "lusc": "squamous",
        "大细胞癌": "large_cell",
        "large cell": "large_cell",
        "large cell carcinoma": "large_cell",
        "肉瘤样癌": "sarcomatoid",
        "sarcomatoid carcinoma": "sarcomatoid",
        "非小细胞肺癌": "nos",
        "nsclc nos": "nos",
        "nsclc": "nos",
        "not otherwise specified": "nos",
        "其他": "other",
    },
    "method": {
        "ngs": "ngs_dna",
        "dna ngs": "ngs_dna",
        "ngs (dna)": "ngs_dna",
        "ngs-dna": "ngs_dna",
        "rna ngs": "ngs_rna",
        "ngs (rna)": "ngs_rna",
        "ngs-rna": "ngs_rna",
        "dna+rna ngs": "ngs_dna_rna",
        "ngs dna+rna": "ngs_dna_rna",
        "ngs (dna+rna)": "ngs_dna_rna",
        "arms": "pcr",
        "arms-pcr": "pcr",
        "qpcr": "pcr",
        "rt-pcr": "pcr",
        "real-time pcr": "pcr",
        "数字pcr": "ddpcr",
        "dpcr": "ddpcr",
        "digital pcr": "ddpcr",
        "荧光原位杂交": "fish",
        "免疫组化": "ihc",
        "ventana": "ihc",
        "d5f3": "ihc",
        "其他": "other",
    },
}

# Biomarker spellings: exact synonyms first, then patterns (variant-level spellings such as
# "EGFR exon 19 del" name the biomarker EGFR).
_BIOMARKER_SYNONYMS = {
    "her2": "ERBB2",
    "erbb2 (her2)": "ERBB2",
    "her2 mutation": "ERBB2",
    "kras g12c": "KRAS_G12C",
    "kras p.g12c": "KRAS_G12C",
    "braf v600e": "BRAF_V600E",
    "braf p.v600e": "BRAF_V600E",
    "ntrk1": "NTRK",
    "ntrk2": "NTRK",
    "ntrk3": "NTRK",
    "ntrk1/2/3": "NTRK",
    "met exon 14": "MET_EX14",
    "metex14": "MET_EX14",
    "met ex14": "MET_EX14",
    "met amplification": "MET_AMP",
    "met扩增": "MET_AMP",
    "met amp": "MET_AMP",
}
_BIOMARKER_PATTERNS = (
    (re.compile(r"^met\s*(exon|ex|外显子)?\s*14"), "MET_EX14"),
    (re.compile(r"^met.*(skip|跳跃)"), "MET_EX14"),
    (re.compile(r"^met.*(amp|扩增)"), "MET_AMP"),
    (re.compile(r"^kras\s*(p\.)?g12c"), "KRAS_G12C"),
    (re.compile(r"^braf\s*(p\.)?v600e"), "BRAF_V600E"),
    (re.compile(r"^(her2|erbb2)\b"), "ERBB2"),
    (re.compile(r"^ntrk"), "NTRK"),
    (re.compile(r"^egfr\b"), "EGFR"),
    (re.compile(r"^alk\b"), "ALK"),
    (re.compile(r"^ros1\b"), "ROS1"),
    (re.compile(r"^ret\b"), "RET"),
    (re.compile(r"^kras\b"), "KRAS"),
)

# EGFR exon 19 deletions are written many ways; canonical variant text kept on site only.
_EGFR_EX19DEL = re.compile(
    r"(ex(on)?\s*19|e19|19\s*外显子|19号外显子|^19)\s*[- ]?\s*(del|缺失)", re.I
)
_EGFR_L858R = re.compile(r"l858r", re.I)
_MET_SKIP = re.compile(r"(ex(on)?)?\s*14\s*(号)?(外显子)?\s*(跳跃|skip)", re.I)


def fold(text: str) -> str:
    return " ".join(text.strip().casefold().split())


def normalise(field: str, text: str, extra: dict[str, str] | None = None) -> str | None:
    """The canonical value of text for field, or None when it is not known."""
    folded = fold(text)
    if extra and folded in extra:
        return extra[folded]
    allowed = VOCABULARY[field]
    if field == "biomarker":
        upper = folded.upper().replace(" ", "_")
        if upper in allowed:
            return upper
        if folded in _BIOMARKER_SYNONYMS:
            return _BIOMARKER_SYNONYMS[folded]
        for pattern, value in _BIOMARKER_PATTERNS:
            if pattern.search(folded):
                return value
        return None
    if folded in allowed:
        return folded
    return VALUE_SYNONYMS.get(field, {}).get(folded)


def normalise_variant(text: str) -> str:
    """A tidier spelling of common variants (kept on site; variants never leave)."""
    if _EGFR_EX19DEL.search(text):
        return "EGFR exon 19 deletion"
    if _EGFR_L858R.search(text):
        return "EGFR L858R"
    if _MET_SKIP.search(text):
        return "MET exon 14 skipping"
    return text.strip()
