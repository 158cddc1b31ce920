"""Rolling order and the offline file diff against the last applied manifest."""
from __future__ import annotations

from dataclasses import dataclass, field


def rolling_order(nodes: list[str], master: str, holder: str | None = None,
                  applied: dict | None = None) -> list[str]:
    """BACKUP nodes first (spec order), the node holding the reserved IP after them, and the
    nodes never applied yet (absent from the last applied record) after everyone.

    The holder is read live when known; otherwise the configured MASTER is assumed to hold it.
    A new node must start keepalived only once every existing node, the holder included,
    lists it as a unicast peer: pushed earlier, it hears no advert, and after the master-down
    interval (~3 s, shorter than a droplet's roll) it turns MASTER and its notify script takes
    the reserved IP, which nothing moves back. Without any applied node (first apply, another
    machine) nobody is new: nothing advertises yet, so the plain order stands.
    """
    last = holder if holder in nodes else master
    known = set((applied or {}).get("nodes") or {})
    new = [n for n in nodes if known and n not in known and n != last]
    return [n for n in nodes if n != last and n not in new] + [last] + new


@dataclass
class FileChange:
    target: str
    op: str  # add | change | remove | same
    old_sha: str | None
    new_sha: str | None
    component: str
    detail: str = ""


@dataclass
class NodeDiff:
    node: str
    changes: list[FileChange] = field(default_factory=list)

    @property
    def pending(self) -> list[FileChange]:
        return [c for c in self.changes if c.op != "same"]

    @property
    def reloads(self) -> list[str]:
        return sorted({c.component for c in self.pending})


def diff_node(node: str, desired: dict[str, dict], applied: dict[str, dict]) -> NodeDiff:
    """desired/applied: target path -> {sha256, mode, owner, component}."""
    out = NodeDiff(node)
    for target in sorted(set(desired) | set(applied)):
        new, old = desired.get(target), applied.get(target)
        if old is None:
            assert new is not None  # the target came from one of the two
            out.changes.append(FileChange(target, "add", None, new["sha256"], new["component"]))
        elif new is None:
            out.changes.append(FileChange(target, "remove", old["sha256"], None, old.get("component", "?")))
        else:
            what = [k for k in ("sha256", "mode", "owner") if new[k] != old.get(k)]
            op = "change" if what else "same"
            detail = ", ".join("content" if k == "sha256" else k for k in what)
            out.changes.append(FileChange(target, op, old["sha256"], new["sha256"], new["component"], detail))
    return out
