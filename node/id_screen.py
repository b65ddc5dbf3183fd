"""Free text that leaves the site (corrective actions) is screened for the lab's own identifiers.

A lab answering a flag naturally names the sample it found ("TID-88410 of MRN-5521907 was fixed
in unbuffered formalin"), but test ids and patient ids never leave a node (docs/privacy.md). Every
word of the text that could be an id is looked up: as a test id the node holds, as a raw patient
id (its keyed hash is a patient key the node holds; raw ids are never stored) and as a hashed
patient id (a patient key, or the first 8 or more of its hex digits). A text naming one is
refused with a message saying which, so the lab rewrites it.
"""

from __future__ import annotations

import re
import sqlite3

from node.pseudonym import Pseudonymiser

# A word that could be an id: letters and digits, joined by . _ - / # : (ids rarely hold spaces).
_WORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/#:-]*[A-Za-z0-9])?")
_PART = re.compile(r"[A-Za-z0-9_-]+")
_HEX = re.compile(r"[0-9a-f]{8,32}")


def candidates(text: str) -> list[str]:
    """Every word of the text, and its parts between . / # : (an id may be written inside a
    longer word, e.g. TID-88410/2), in order, once each."""
    out: dict[str, None] = {}
    for word in _WORD.findall(text):
        out[word] = None
        for part in _PART.findall(word):
            out[part] = None
    return list(out)


def _present(conn: sqlite3.Connection, sql: str, values: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(v for (v,) in conn.execute(sql.format(marks=marks), chunk))
    return found


def ids_in(conn: sqlite3.Connection, pseudonymise: Pseudonymiser, text: str) -> list[str]:
    """What the text names that the node holds, each as "test id X", "patient id X" or
    "hashed patient id X"; empty if nothing."""
    words = candidates(text)
    if not words:
        return []
    tests = _present(conn, "SELECT DISTINCT test_id FROM results WHERE test_id IN ({marks})", words)
    hashed = {pseudonymise(w): w for w in words}
    patients = _present(
        conn,
        "SELECT DISTINCT patient_key FROM results WHERE patient_key IN ({marks})",
        list(hashed),
    )
    hex_words = [w for w in words if _HEX.fullmatch(w.lower())]
    keys = {
        w
        for w in hex_words
        for (found,) in conn.execute(
            "SELECT 1 FROM results WHERE patient_key >= ? AND patient_key < ? LIMIT 1",
            (w.lower(), w.lower() + "g"),
        )
        if found
    }
    out = [f"test id {w}" for w in words if w in tests]
    out += [f"patient id {hashed[k]}" for k in hashed if k in patients]
    out += [f"hashed patient id {w}" for w in words if w in keys]
    return out
