"""benchmark.json's one encoding (method/report_bytes.py): the figures read back exactly, keys
sorted, text in UTF-8, numpy floats as Python floats."""

from __future__ import annotations

import json
import math
import re

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from method.report_bytes import benchmark_bytes

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), _values, max_size=6))
def test_every_figure_reads_back_as_it_was(result: dict) -> None:
    written = benchmark_bytes(result)
    assert written.endswith(b"\n") and b"\n" not in written[:-1]
    assert json.loads(written) == result


def test_keys_are_sorted_text_is_utf8_and_numpy_floats_are_floats() -> None:
    written = benchmark_bytes({"b": 1, "a": {"z": np.float64(0.1), "y": "肺癌"}, "c": (1, 2)})
    assert written == '{"a":{"y":"肺癌","z":0.1},"b":1,"c":[1,2]}\n'.encode()


def _digits(text: str) -> str:
    return re.sub(r"e.*", "", text).replace(".", "").replace("-", "").strip("0")


def test_a_float_is_its_shortest_round_trip_digits() -> None:
    for x in (1e-05, 0.1 + 0.2, 9.747484080099677e-48, 1e16, 2.0**-1074, math.pi, 1.5e17):
        text = benchmark_bytes({"x": x}).decode()[5:-2]
        assert float(text) == x
        assert _digits(text) == _digits(repr(x))
