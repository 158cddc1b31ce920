"""Line diffs for the plan: what each changed file looked like on the node, and what it becomes.

Pure: the caller hands in the old bytes (the cache's content store, or a render at a git
revision) and the new bytes (the render). Secret slots are never rendered, so they are never
diffed here: a slot is reported by name ("secret changed"), never by value or by hash.
"""
from __future__ import annotations

import difflib
import re

NO_PREVIOUS = "no previous content recorded"
NOT_TEXT = "not UTF-8 text; not shown"
# A Markdown comment is read by a person (and GitHub refuses comments over 65536 characters):
# each file's diff is cut at this size there; --json and the terminal carry all of it.
MARKDOWN_MAX_LINES = 80
MARKDOWN_MAX_CHARS = 6000
# All diffs of one markdown plan together: GitHub refuses a comment over 65,536 characters, and
# the tables and guard around the diffs need room too.
MARKDOWN_DIFF_BUDGET = 48000


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unified(path: str, old: bytes | None, new: bytes | None) -> tuple[str | None, str | None]:
    """(diff, note): a unified diff of one node file, old → new (None: the file is not there).

    The headers name the node path (a/… b/… as git does); a last line without a newline is
    marked as diff(1) marks it, so a changed final newline is a visible change."""
    old_text = "" if old is None else _text(old)
    new_text = "" if new is None else _text(new)
    if old_text is None or new_text is None:
        return None, NOT_TEXT
    a = _lines(old_text)
    b = _lines(new_text)
    out = list(difflib.unified_diff(a, b, "/dev/null" if old is None else f"a{path}",
                                    "/dev/null" if new is None else f"b{path}", n=3))
    if not out:
        return None, None
    return "".join(out), None


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def slot_changes(desired: list, base: dict[str, dict] | None) -> list[dict]:
    """Secret slots whose filling changed (which secret, mode, owner), were added or removed.

    base: target -> {secret, mode, owner, component, layer} as last applied, or None when that record does
    not list slots (then nothing is claimed). The value itself is read at push time, so a new
    value of the same secret is not known here: the engine preview shows that push changing."""
    if base is None:
        return []
    out = []
    now = {s.target: s for s in desired}
    for target in sorted(set(now) | set(base)):
        s, old = now.get(target), base.get(target)
        if old is None:
            assert s is not None  # the target came from one of the two
            out.append(_slot_row(target, "add", s.component, "secret added (filled at push, never shown)"))
        elif s is None:
            out.append(_slot_row(target, "remove", old["component"], "secret removed"))
        elif (s.secret, f"{s.mode:04o}", s.owner) != (old["secret"], old["mode"], old["owner"]):
            what = [k for k, a, b in (("secret", s.secret, old["secret"]), ("mode", f"{s.mode:04o}", old["mode"]),
                                      ("owner", s.owner, old["owner"])) if a != b]
            out.append(_slot_row(target, "change", s.component, "secret changed", ", ".join(what)))
    return out


def _slot_row(target: str, op: str, component: str, note: str, detail: str = "") -> dict:
    return {"path": target, "op": op, "oldSha256": None, "newSha256": None, "component": component,
            "detail": detail, "secret": True, "diff": None, "diffNote": note}


def shared(nodes: list[dict]) -> dict[tuple[str, str], list[str]]:
    """(path, diff) -> the nodes (in rolling order) where that exact change happens."""
    seen: dict[tuple[str, str], list[str]] = {}
    for n in nodes:
        for c in n["changes"]:
            if c.get("diff"):
                seen.setdefault((c["path"], c["diff"]), []).append(n["node"])
    return seen


def cut(diff: str, max_lines: int = MARKDOWN_MAX_LINES, max_chars: int = MARKDOWN_MAX_CHARS) -> tuple[str, int]:
    """(the diff cut to the caps, how many lines were left out)."""
    lines = diff.splitlines(keepends=True)
    kept: list[str] = []
    size = 0
    for line in lines:
        if len(kept) >= max_lines or size + len(line) > max_chars:
            break
        kept.append(line)
        size += len(line)
    return "".join(kept), len(lines) - len(kept)


def fenced(text: str, info: str = "diff") -> list[str]:
    """A Markdown code block no file content can close early: the fence is longer than any
    run of backticks in the text (CommonMark), so a compose file holding ``` stays inside."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, *text.rstrip("\n").split("\n"), fence]


def rich_lines(diff: str):
    """The diff as Rich Text lines, coloured by kind; file content is never read as markup."""
    from rich.text import Text

    for line in diff.rstrip("\n").split("\n"):
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = "dim" if line.startswith("\\") else ""
        yield Text(line, style=style)
