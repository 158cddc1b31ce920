"""Capped reads of the operator's inputs (the spec, compose files): UTF-8, at most 1 MiB, and
the nesting checks that keep the YAML parser's cost bounded."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import config_error

# Specs and compose files are small; a larger input is a mistake (or an attack) and would
# take the YAML parser minutes (50 MB: 36 s). 1 MiB is hundreds of times the largest example.
MAX_INPUT_BYTES = 1 << 20


# Flow collections nested deeper than this are never a spec or a compose file, and ruamel's
# scanner is quadratic in their depth (30,000 `[` take 5 s before any error is raised).
MAX_FLOW_DEPTH = 64
_QUOTED_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|(?:^|(?<=\s))#[^\n]*', re.M)


def flow_depth(text: str) -> int:
    """Deepest nesting of [ and { outside quoted strings and comments (a cheap pre-parse check)."""
    depth = deepest = 0
    for ch in re.findall(r"[\[\]{}]", _QUOTED_OR_COMMENT.sub("", text)):
        depth = depth + 1 if ch in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


# Levels of nesting, block or flow, in the loaded data: far beyond any spec or compose file,
# far below what the YAML emitter and copy.deepcopy recurse through (about 250).
MAX_DEPTH = 2 * MAX_FLOW_DEPTH


def too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """Is the loaded data nested deeper than limit (or does it contain itself)? Each node shared
    through an alias is measured once, so an alias bomb costs its size on disk, not expanded."""
    heights: dict[int, int] = {}
    active: set[int] = set()

    def height(node: Any, budget: int) -> int:
        if not isinstance(node, (dict, list)):
            return 0
        key = id(node)
        if key in heights:
            return heights[key]
        if key in active or budget <= 0:
            return limit + 1  # a cycle, or deeper than the budget: either way too deep
        active.add(key)
        h = 0
        for child in (node.values() if isinstance(node, dict) else node):
            h = max(h, 1 + height(child, budget - 1))
            if h > budget:
                break  # the first overrun is the answer all the way up
        active.discard(key)
        heights[key] = h
        return h

    return height(data, limit) > limit


def load_bounded(text: str, yaml: Any) -> Any:
    """`yaml.load(text)`, raising RecursionError — the answer the parser gives itself, only later
    and after minutes — for flow collections nested past MAX_FLOW_DEPTH before parsing, and for
    data nested too deeply (or containing itself) after."""
    if flow_depth(text) > MAX_FLOW_DEPTH:
        raise RecursionError
    data = yaml.load(text)
    if too_deep(data):
        raise RecursionError
    return data


def read_input(path: Path, shown: str, missing: tuple[str, str]) -> str:
    """The text of an operator's file (spec, compose file): UTF-8, at most 1 MiB, else a config
    error; `missing` is the (message, hint) for a file that is not there."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise config_error(*missing) from None
    except IsADirectoryError:
        raise config_error(f"{shown} is a directory, not a file", missing[1]) from None
    except OSError as exc:
        raise config_error(f"{shown} cannot be read: {exc.strerror or exc}",
                           "check the file's permissions (ls -l) and that it is a regular file") from None
    if len(data) > MAX_INPUT_BYTES:
        raise config_error(f"{shown} is larger than {MAX_INPUT_BYTES >> 20} MiB",
                           "this is not a dynia input file; point at the right file or trim it") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise config_error(f"{shown}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
                           "save the file as UTF-8 (iconv -t UTF-8 converts it)") from None
