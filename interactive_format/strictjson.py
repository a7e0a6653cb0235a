"""Strict JSON: non-finite floats (an empty reply's score) become null, unknown objects their str().

One encoder for what leaves the app as JSON: the store's JSON columns, the export file, the API's text.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any) -> str:
    """`value` as strict JSON text (never NaN or Infinity, which most parsers refuse)."""
    return json.dumps(plain(value), ensure_ascii=False, allow_nan=False)


def plain(value: Any) -> Any:
    """`value` as strict JSON data: non-finite floats become None, unknown objects their str()."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return finite(value)
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


def finite(x: float | None) -> float | None:
    """`x` as a float, or None when it is missing or not finite."""
    return float(x) if x is not None and math.isfinite(x) else None
