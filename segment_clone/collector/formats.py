"""JSON Schema ``format`` checks bounded in length, so that no string can stall the collector.

fastjsonschema checks a format with a regular expression, and some are quadratic: its email
pattern took 17.6 s of CPU on one 128 KB string, holding the GIL (every other request waited).
Here each of the draft's formats is handed to fastjsonschema as a custom format that refuses a
string longer than any real value of that format before the pattern sees it: the same pattern,
so the meaning of a format does not drift, at a cost bounded by the length.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

FormatCheck = Callable[[str], bool]
MAX_LENGTH = {"email": 320, "idn-email": 320, "hostname": 253, "idn-hostname": 253}
"""An address is at most 64 + 1 + 255 characters (RFC 5321), a host name 253 (RFC 1035)."""
DEFAULT_MAX_LENGTH = 8192
"""Any other format (a URI, a date, a JSON pointer): longer than any such value in practice."""


@functools.cache
def bounded_formats(draft: str | None) -> dict[str, FormatCheck]:
    """The formats fastjsonschema knows under ``draft`` (a ``$schema``), each bounded."""
    return {
        name: _bounded(re.compile(pattern), MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH))
        for name, pattern in _patterns(draft or "").items()
    }


def _bounded(pattern: re.Pattern[str], limit: int) -> FormatCheck:
    def check(text: str) -> bool:
        return len(text) <= limit and pattern.match(text) is not None

    return check


def _patterns(draft: str) -> dict[str, str]:
    """The format patterns of the code generator fastjsonschema compiles a schema of this
    ``$schema`` with (the same choice as its own)."""
    from fastjsonschema.draft04 import CodeGeneratorDraft04
    from fastjsonschema.draft06 import CodeGeneratorDraft06
    from fastjsonschema.draft07 import CodeGeneratorDraft07
    from fastjsonschema.draft2019 import CodeGeneratorDraft2019

    generator: Any = CodeGeneratorDraft2019
    for marker, candidate in (
        ("draft-04", CodeGeneratorDraft04),
        ("draft-06", CodeGeneratorDraft06),
        ("draft-07", CodeGeneratorDraft07),
    ):
        if marker in draft:
            generator = candidate
            break
    patterns: dict[str, str] = generator.FORMAT_REGEXS
    return patterns
