"""The offline plan as data, and its three faces: terminal tables, JSON, a Markdown PR comment."""
from __future__ import annotations

import re

from ..planner import diff_node
from ..render.rendering import Rendering
from ..shown import escape
from .diffs import (
    MARKDOWN_DIFF_BUDGET,
    MARKDOWN_MAX_CHARS,
    NO_PREVIOUS,
    cut,
    fenced,
    rich_lines,
    shared,
    slot_changes,
    unified,
)


def offline_plan(rendering: Rendering, applied: dict, read_content=None) -> dict:
    """The plan against the last applied record; read_content(sha256) gives the bytes the
    node had (dynia.state.cache.ClusterCache.read_content), None where none were recorded."""
    applied_nodes = applied.get("nodes", {})
    slots = applied.get("slots")
    nodes = [_node_plan(rendering, node, applied_nodes.get(node, {}), read_content or (lambda sha: None),
                        (slots or {}).get(node) if slots is not None and node in applied_nodes else None,
                        None if node in applied_nodes else NO_PREVIOUS)
             for node in rendering.rolling_order]
    return _plan(rendering, nodes, applied.get("configVersion"))


def against_plan(rendering: Rendering, base: Rendering | None, ref: str, commit: str | None) -> dict:
    """The plan of this render against the render at a git revision (None: no spec there, a
    new cluster). Both renders use planned addresses and no applied record."""
    nodes = []
    old_slots: dict | None
    for node in rendering.rolling_order:
        if base is None or node not in base.files:
            old_manifest, contents, old_slots = {}, {}, ({} if base is not None else None)
        else:
            old_manifest = base.manifest(node)
            contents = {f.sha256: f.content for f in base.files[node]}
            old_slots = {s.target: {"secret": s.secret, "mode": f"{s.mode:04o}", "owner": s.owner,
                                    "component": s.component, "layer": s.layer} for s in base.slots[node]}
        nodes.append(_node_plan(rendering, node, old_manifest, contents.get, old_slots,
                                NEW_CLUSTER if base is None else None))
    if base is not None:  # a node the spec no longer lists: every file of it goes
        for node in base.rolling_order:
            if node not in rendering.files:
                d = diff_node(node, {}, base.manifest(node))
                contents = {f.sha256: f.content for f in base.files[node]}
                nodes.append({"node": node, "privateIp": base.inventory.nodes[node][0],
                              "changes": [_change(c, contents.get, None, None) for c in d.pending],
                              "unchanged": 0, "reload": [], "secretSlots": [], "removedNode": True})
    plan = _plan(rendering, nodes, None)
    plan["against"] = {"ref": ref, "commit": commit, "newCluster": base is None}
    return plan


NEW_CLUSTER = "new cluster: everything is added"


# `dynia plan --json`: the version of this document's shape, as every dynia JSON document has.
SCHEMA_VERSION = 1


def _plan(rendering: Rendering, nodes: list[dict], applied_version) -> dict:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "cluster": rendering.cluster,
        "configVersion": rendering.config_version,
        "appliedVersion": applied_version,
        "specHash": rendering.spec_hash,
        "addresses": "planned" if rendering.inventory.planned else "provisioned",
        "rollingOrder": rendering.rolling_order,
        "nodes": nodes,
        "guard": rendering.guard.as_dict() if rendering.guard else None,
        "notices": rendering.notices,
        "pending": sum(len(n["changes"]) for n in nodes),
    }


def _node_plan(rendering: Rendering, node: str, base_manifest: dict, read_old, base_slots, no_base: str | None) -> dict:
    d = diff_node(node, rendering.manifest(node), base_manifest)
    new = {f.target: f.content for f in rendering.files[node]}
    changes = [_change(c, read_old, new.get(c.target), no_base) for c in d.pending]
    changes += slot_changes(rendering.slots[node], base_slots)
    return {
        "node": node,
        "privateIp": rendering.inventory.nodes[node][0],
        "changes": changes,
        "unchanged": sum(1 for c in d.changes if c.op == "same"),
        "reload": sorted({c["component"] for c in changes}),
        "secretSlots": [s.target for s in rendering.slots[node]],
    }


def _change(c, read_old, new_content: bytes | None, no_base: str | None) -> dict:
    diff, note = None, None
    if no_base is not None:
        note = no_base
    elif c.op == "add" or c.old_sha != c.new_sha:
        old = None if c.op == "add" else read_old(c.old_sha)
        if old is None and c.op != "add":
            note = NO_PREVIOUS
        else:
            diff, note = unified(c.target, old, new_content if c.op != "remove" else None)
    return {"path": c.target, "op": c.op, "oldSha256": c.old_sha, "newSha256": c.new_sha,
            "component": c.component, "detail": c.detail, "secret": False, "diff": diff, "diffNote": note}


# A notice's kind as the terminal shows it; the Markdown comment uses the same words.
NOTICE_LABELS = {"isolation-exception": ("isolation exception: ", "bold red"),
                 "replicated-state": ("replicated state: ", "bold yellow"),
                 "maintenance": ("maintenance: ", "bold yellow"),
                 "warning": ("warning: ", "yellow"),
                 "lockout": ("locks out: ", "bold red"),
                 "resize": ("resize: ", "bold yellow")}


def _short(sha: str | None) -> str:
    return sha[:8] if sha else "—"


def _guard_rows(plan: dict):
    g = plan["guard"]
    for r in g["nodes"]:
        yield (r["node"], r["role"], str(r["ramMiB"]), str(r["infraMiB"]), str(r["steadyMiB"]),
               str(r["peakMiB"]), f"{r['ratio']:.1%}", "ok" if r["ok"] else g["onExceed"].upper())


GUARD_HEADER = ("node", "role", "RAM MiB", "infra", "services", "peak", "use", "guard")


def _header(plan: dict) -> str:
    a = plan.get("against")
    if a:
        at = f"{a['ref']} ({a['commit'][:12]})" if a.get("commit") else a["ref"]
        return f"against {at}" + (": new cluster, everything is added" if a["newCluster"] else "")
    return (f"config v{plan['configVersion']}"
            + (f" (applied v{plan['appliedVersion']})" if plan["appliedVersion"] else " (never applied)"))


def _first_plan(plan: dict) -> bool:
    """A cluster never applied: no file has previous content, which is said once, not per file."""
    return not plan.get("against") and not plan["appliedVersion"]


def _note(plan: dict, c: dict) -> str | None:
    return None if _first_plan(plan) and c.get("diffNote") == NO_PREVIOUS else c.get("diffNote")


def _path_cell(c: dict) -> str:
    extra = c["diffNote"] if c.get("secret") else c["detail"]
    return c["path"] + (f" ({extra})" if extra else "")


def print_plan(plan: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    # Every value is text, never markup: paths, names, details and file contents come from the
    # spec and the operator's compose files.
    def line(*parts) -> None:
        console.print(Text.assemble(*parts))

    line((plan["cluster"], "bold"), " ", _header(plan))
    if plan.get("against"):
        line(("addresses are planned on both sides (no provision state is read): "
              "the lines that name node addresses show the planned ones", "yellow"))
    elif plan["addresses"] == "planned":
        line(("addresses are planned until provision; infra files change once "
              "the droplets have their real private addresses", "yellow"))
    for n in plan.get("notices", ()):
        line(NOTICE_LABELS[n["kind"]], (n["text"], "bold"))
    line("rolling order: " + " → ".join(plan["rollingOrder"]) + "  (backups, then the VIP holder, then nodes never applied)")
    if _first_plan(plan):
        line((f"never applied: {NO_PREVIOUS} for any file, so no line diffs", "dim"))
    first_shown: dict[tuple[str, str], str] = {}
    for n in plan["nodes"]:
        t = Table(title=Text(f"{n['node']} ({n['privateIp']})" + (" — leaves the cluster" if n.get("removedNode") else "")),
                  title_justify="left", show_edge=False)
        for col in ("op", "path", "old → new", "reloads"):
            t.add_column(col)
        for c in n["changes"]:
            style = {"add": "green", "change": "yellow", "remove": "red"}[c["op"]]
            hashes = "secret" if c.get("secret") else f"{_short(c['oldSha256'])} → {_short(c['newSha256'])}"
            t.add_row(Text(c["op"], style), Text(_path_cell(c)), Text(hashes), Text(c["component"]))
        if n["changes"]:
            console.print(t)
        else:
            line((n["node"], "bold"), ": no changes")
        for c in n["changes"]:
            if c.get("secret"):
                continue
            if c.get("diff"):
                key = (c["path"], c["diff"])
                if key in first_shown:
                    line(("  " + c["path"], "bold"), (f": the same change as on {first_shown[key]}", "dim"))
                    continue
                first_shown[key] = n["node"]
                for text in rich_lines(c["diff"]):
                    console.print(Text("  ") + text)
            elif _note(plan, c):
                line(("  " + c["path"], "bold"), (f": {c['diffNote']}", "dim"))
        line(f"  {n['unchanged']} unchanged; reload: {', '.join(n['reload']) or 'nothing'}; "
             f"secret slots filled at push (never rendered, never diffed): {len(n['secretSlots'])}")
    g = Table(title="resource guard", title_justify="left", show_edge=False)
    for col in GUARD_HEADER:
        g.add_column(col)
    for row in _guard_rows(plan):
        g.add_row(*(Text(v) for v in row))
    console.print(g)
    for a in plan["guard"]["assumedDefaults"]:
        line((f"  no memory limit: {a}", "dim"))
    line(f"{plan['pending']} file change(s) across {len(plan['nodes'])} node(s)")


def _code(text: str) -> str:
    """Inline code: a fence longer than any run of backticks in the text (a git ref may hold
    them), so the text can never close it early. Node paths hold no backtick or pipe."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def markdown(plan: dict) -> str:
    against = plan.get("against")
    title = f"### dynia plan: `{plan['cluster']}` → " + (
        f"against {_code(against['ref'])}" if against else f"config v{plan['configVersion']}")
    lines = [title, ""]
    if against:
        at = f"{_code(against['ref'])} (`{against['commit'][:12]}`)" if against.get("commit") else _code(against["ref"])
        lines += [f"> Compared with the spec and compose files at {at}"
                  + (": **new cluster, everything is added**." if against["newCluster"] else "."),
                  "> Addresses are planned on both sides (no provision state is read).", ""]
    elif plan["addresses"] == "planned":
        lines += ["> Addresses are planned until provision.", ""]
    for n in plan.get("notices", ()):
        lines += [f"> **{NOTICE_LABELS[n['kind']][0].rstrip(': ')}**: {_code(n['text'])}", ""]
    lines += [f"Rolling order: {' → '.join(f'`{n}`' for n in plan['rollingOrder'])} (backups, then the VIP holder, then nodes never applied)", ""]
    if _first_plan(plan):
        lines += [f"> Never applied: {NO_PREVIOUS} for any file, so no line diffs.", ""]
    groups = shared(plan["nodes"])
    shown: set[tuple[str, str]] = set()
    budget = MARKDOWN_DIFF_BUDGET  # what is left for diffs in this document
    for n in plan["nodes"]:
        gone = " (leaves the cluster)" if n.get("removedNode") else ""
        lines.append(f"#### `{n['node']}`{gone} — {len(n['changes'])} change(s), reload: "
                     f"{', '.join(n['reload']) or 'nothing'}")
        if n["changes"]:
            lines += ["", "| op | path | reloads |", "|---|---|---|"]
            for c in n["changes"]:
                lines.append(f"| {c['op']} | {_code(_path_cell(c))} | {c['component']} |")
        body = []
        for c in n["changes"]:
            if c.get("secret"):
                continue
            if c.get("diff"):
                key = (c["path"], c["diff"])
                where = groups[key]
                if key in shown:
                    body += [f"{_code(c['path'])}: the same change as shown for `{where[0]}`.", ""]
                    continue
                shown.add(key)
                on = f" — on {', '.join(f'`{w}`' for w in where)}" if len(where) > 1 else ""
                if budget <= 0:
                    body += [f"{_code(c['path'])}{on}: diff left out (this comment reached its size "
                             "budget; `dynia plan --json` has every diff).", ""]
                    continue
                text, left = cut(c["diff"], max_chars=min(MARKDOWN_MAX_CHARS, budget))
                budget -= len(text)
                body += [f"{_code(c['path'])}{on}", "", *fenced(text)]
                if left:
                    body.append(f"*(cut: {left} more line(s); `dynia plan --json` has the whole diff)*")
                body.append("")
            elif _note(plan, c):
                body += [f"{_code(c['path'])}: {c['diffNote']}.", ""]
        if body:
            lines += ["", f"<details><summary>Line diffs on <code>{n['node']}</code></summary>", "", *body,
                      "</details>"]
        lines.append("")
    lines += ["#### Resource guard", "", "| " + " | ".join(GUARD_HEADER) + " |",
              "|" + "---|" * len(GUARD_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _guard_rows(plan)]
    if plan.get("resources"):
        lines += ["", "#### Engine preview", "", "| phase | node | resource | op | changed |", "|---|---|---|---|---|"]
        from ..engine.automation import describe_change  # pure formatting; imports no Pulumi

        def cell(text: str) -> str:  # values are engine text: keep the table's pipes and tags intact
            return text.replace("|", "\\|").replace("<", "&lt;")

        lines += [f"| {r['phase']} | {r['node']} | `{r['resource']}` | {r['op']} | "
                  + "<br>".join(cell(line) for line in describe_change(r)) + " |" for r in plan["resources"]]
    lines += ["", f"**{plan['pending']} change(s)** across {len(plan['nodes'])} node(s)."]
    return escape("\n".join(lines) + "\n")  # names, refs and diffs are the operator's text
