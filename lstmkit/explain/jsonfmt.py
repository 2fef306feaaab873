"""JSON that people can read: indented objects, but each list of numbers on one line."""

from __future__ import annotations

import json
import re

_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-0-9.eE+]*(?:,\s*-?[0-9][-0-9.eE+]*)*)\s*\]")


def dumps(data) -> str:
    """json.dumps(indent=1) with innermost number lists collapsed: "h": [0.7, 0.0]."""
    text = json.dumps(data, indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
