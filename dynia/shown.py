"""Text dynia did not write itself, made safe for a terminal.

Node answers, spec keys, compose names, git refs and directory names reach the output; a raw
control character in them would act on the operator's terminal (ESC retitles it or hides lines,
CSI in its one-byte C1 form too, a bidi override reverses what is read). Every printer passes
what it shows through `escape` (the CLI's console does it for every table and line, see
dynia.cli.common.console); `--json` needs nothing: json.dumps escapes them itself.
"""
from __future__ import annotations

import re

# C0 except tab and newline (layout, not commands), DEL, C1, and the bidi embedding, override
# and isolate marks.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _code(match: re.Match) -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def escape(text: str) -> str:
    """`text` with every unsafe character written as its escape (`\\x1b`, `\\u202e`)."""
    return UNSAFE.sub(_code, text)
