"""The offline plan as data, and its three faces: terminal tables, JSON, a Markdown PR comment."""
from __future__ import annotations

from .planner import diff_node
from .render import Rendering


def offline_plan(rendering: Rendering, applied: dict) -> dict:
    applied_nodes = applied.get("nodes", {})
    nodes = []
    for node in rendering.rolling_order:
        d = diff_node(node, rendering.manifest(node), applied_nodes.get(node, {}))
        nodes.append({
            "node": node,
            "privateIp": rendering.inventory.nodes[node][0],
            "changes": [{"path": c.target, "op": c.op, "oldSha256": c.old_sha, "newSha256": c.new_sha,
                         "component": c.component, "detail": c.detail} for c in d.pending],
            "unchanged": sum(1 for c in d.changes if c.op == "same"),
            "reload": d.reloads,
            "secretSlots": [s.target for s in rendering.slots[node]],
        })
    return {
        "cluster": rendering.cluster,
        "configVersion": rendering.config_version,
        "appliedVersion": applied.get("configVersion"),
        "specHash": rendering.spec_hash,
        "addresses": "planned" if rendering.inventory.planned else "provisioned",
        "rollingOrder": rendering.rolling_order,
        "nodes": nodes,
        "guard": rendering.guard.as_dict() if rendering.guard else None,
        "pending": sum(len(n["changes"]) for n in nodes),
    }


def _short(sha: str | None) -> str:
    return sha[:8] if sha else "—"


def _guard_rows(plan: dict):
    g = plan["guard"]
    for r in g["nodes"]:
        yield (r["node"], r["role"], str(r["ramMiB"]), str(r["infraMiB"]), str(r["steadyMiB"]),
               str(r["peakMiB"]), f"{r['ratio']:.0%}", "ok" if r["ok"] else g["onExceed"].upper())


GUARD_HEADER = ("node", "role", "RAM MiB", "infra", "services", "peak", "use", "guard")


def print_plan(plan: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    # Every value is text, never markup: paths, names and details come from the spec.
    def line(*parts) -> None:
        console.print(Text.assemble(*parts))

    line((plan["cluster"], "bold"), f" config v{plan['configVersion']}",
         f" (applied v{plan['appliedVersion']})" if plan["appliedVersion"] else " (never applied)")
    if plan["addresses"] == "planned":
        line(("addresses are planned until provision; infra files change once "
              "the droplets have their real private addresses", "yellow"))
    line("rolling order: " + " → ".join(plan["rollingOrder"]) + "  (backups, then the VIP holder, then nodes never applied)")
    for n in plan["nodes"]:
        t = Table(title=Text(f"{n['node']} ({n['privateIp']})"), title_justify="left", show_edge=False)
        for col in ("op", "path", "old → new", "reloads"):
            t.add_column(col)
        for c in n["changes"]:
            style = {"add": "green", "change": "yellow", "remove": "red"}[c["op"]]
            t.add_row(Text(c["op"], style), Text(c["path"] + (f" ({c['detail']})" if c["detail"] else "")),
                      Text(f"{_short(c['oldSha256'])} → {_short(c['newSha256'])}"), Text(c["component"]))
        if n["changes"]:
            console.print(t)
        else:
            line((n["node"], "bold"), ": no changes")
        line(f"  {n['unchanged']} unchanged; reload: {', '.join(n['reload']) or 'nothing'}; "
             f"secret slots filled at push: {len(n['secretSlots'])}")
    g = Table(title="resource guard", title_justify="left", show_edge=False)
    for col in GUARD_HEADER:
        g.add_column(col)
    for row in _guard_rows(plan):
        g.add_row(*(Text(v) for v in row))
    console.print(g)
    for a in plan["guard"]["assumedDefaults"]:
        line((f"  no memory limit: {a}", "dim"))
    line(f"{plan['pending']} file change(s) across {len(plan['nodes'])} node(s)")


def markdown(plan: dict) -> str:
    lines = [f"### dynia plan: `{plan['cluster']}` → config v{plan['configVersion']}", ""]
    if plan["addresses"] == "planned":
        lines += ["> Addresses are planned until provision.", ""]
    lines += [f"Rolling order: {' → '.join(f'`{n}`' for n in plan['rollingOrder'])} (backups, then the VIP holder, then nodes never applied)", ""]
    for n in plan["nodes"]:
        lines.append(f"#### `{n['node']}` — {len(n['changes'])} change(s), reload: "
                     f"{', '.join(n['reload']) or 'nothing'}")
        if n["changes"]:
            lines += ["", "| op | path | old → new | reloads |", "|---|---|---|---|"]
            for c in n["changes"]:
                path = c["path"] + (f" ({c['detail']})" if c["detail"] else "")
                lines.append(f"| {c['op']} | `{path}` | `{_short(c['oldSha256'])}` → "
                             f"`{_short(c['newSha256'])}` | {c['component']} |")
        lines.append("")
    lines += ["#### Resource guard", "", "| " + " | ".join(GUARD_HEADER) + " |",
              "|" + "---|" * len(GUARD_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _guard_rows(plan)]
    if plan.get("resources"):
        lines += ["", "#### Engine preview", "", "| phase | node | resource | op | changed |", "|---|---|---|---|---|"]
        lines += [f"| {r['phase']} | {r['node']} | `{r['resource']}` | {r['op']} | {', '.join(r['changed'])} |"
                  for r in plan["resources"]]
    lines += ["", f"**{plan['pending']} change(s)** across {len(plan['nodes'])} node(s)."]
    return "\n".join(lines) + "\n"
