"""dynia status: per node and per service, read live from the nodes (no Pulumi)."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, JSON_OPT, cluster_name, console, emit_json, project

INTERVAL_MIN, INTERVAL_MAX = 1.0, 60.0


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)


def status_cmd(
    ctx: typer.Context,
    cluster: str = CLUSTER_OPT,
    as_json: bool = JSON_OPT,
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C; HTTP counts then cover each interval."),
    interval: float = typer.Option(2.0, "--interval", min=INTERVAL_MIN, max=INTERVAL_MAX,
                                   help="Seconds between refreshes with --watch."),
) -> None:
    """Every node's VRRP role, reserved IP, config version, degraded marker, lockdown and
    components; every service's containers, HAProxy servers and HTTP status counts; one verdict.

    Exit 0 when healthy, 4 when not (a node degraded, unreachable or behind the desired version,
    the reserved-IP holder not the VRRP MASTER, a component or service down).
    """
    from ..errors import EXIT_UNHEALTHY
    from ..operations import status as S
    from ..spec.load import load_cluster

    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    if watch:
        # One JSON document per line with --json (a stream a script can follow); Ctrl-C leaves
        # through KeyboardInterrupt, which dynia.__main__ turns into exit 130.
        def show(st):
            if as_json:
                import json
                import sys

                sys.stdout.write(json.dumps(st.as_dict(), sort_keys=True) + "\n")
                sys.stdout.flush()
            else:
                console().clear()
                print_status(st)

        S.watch(c, interval, show)
        return
    st = S.read(c)
    if as_json:
        emit_json(st.as_dict())
    else:
        print_status(st)
    if not st.healthy:
        raise typer.Exit(EXIT_UNHEALTHY)


def _mark(value: bool | None) -> tuple[str, str]:
    return ("up", "green") if value else ("?", "yellow") if value is None else ("DOWN", "red")


def _http(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "-"
    shown = [f"{k} {v}" for k, v in counts.items() if v]
    return " · ".join(shown) or "none"


def print_status(st) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    window = (f"last {st.http_window_seconds:.0f} s" if st.http_window_seconds is not None
              else "since HAProxy started")
    nodes = Table(title=f"cluster {st.cluster} · reserved IP {st.reserved_ip} · desired v{st.desired_version}",
                  title_justify="left")
    for col in ("node", "address", "role", "VIP", "assigned", "config", "degraded", "lockdown",
                "haproxy", "caddy", "keepalived", "health"):
        nodes.add_column(col)
    for n in st.nodes:
        if not n.reachable:
            nodes.add_row(Text(n.node), Text(n.address), Text("unreachable", "red"),
                          Text(n.error or "", "red"), *[Text("")] * 8)
            continue
        role = Text(f"{n.role or '?'}" + (f" ({n.priority})" if n.priority is not None else ""),
                    "bold" if n.role == "MASTER" else "")
        vip = (Text("holds", "bold") if n.node == st.holder else
               Text("on interface", "yellow") if n.holds_reserved_ip else Text(""))
        assignment = n.reserved_ip_assignment
        # short: the time and the droplet are in --json and, for a failed one on the MASTER, the verdict
        assigned = (Text("-") if assignment is None else
                    Text(f"{assignment.outcome} {assignment.status or ''}".strip(), "red" if assignment.failed else ""))
        config = (Text("never applied", "red") if n.applied_version is None else
                  Text(f"v{n.applied_version}") if n.applied_version == n.desired_version else
                  Text(f"v{n.applied_version}, desired v{n.desired_version}", "red"))
        degraded = Text(f"{n.degraded.reason} ({n.degraded.time})", "red") if n.degraded else Text("no")
        health = Text(str(n.caddy_health or n.caddy_error or "?"), "green" if n.caddy_health == 200 else "red")
        nodes.add_row(Text(n.node), Text(n.address), role, vip, assigned, config, degraded, Text(n.lockdown or "?"),
                      Text(*_mark(n.running.get("haproxy"))), Text(*_mark(n.running.get("caddy"))),
                      Text(*_mark(n.running.get("keepalived"))), health)
    out.print(nodes)

    services = Table(title=f"services · HTTP responses {window} · servers as {st.serving_node or 'no node'}'s "
                           "HAProxy sees them", title_justify="left")
    for col in ("service", "domains", "placement", "containers", "digest", "backend", "servers", "http"):
        services.add_column(col)
    for s in st.services:
        running = [f"{n} {'✓' if any(c.state == 'running' for c in cs) else '✗'}"
                   for n, cs in s.containers.items() if cs or s.placement == "all"]
        digests = sorted({(c.digest or "?").removeprefix("sha256:")[:12] for cs in s.containers.values() for c in cs})
        # A node on a digest its release does not pin is named beside the digests (and a problem).
        digests += [f"{n}: not the release's" for n in sorted(s.off_release)]
        servers = " ".join(f"{k}:{v}" for k, v in s.servers.items()) or "-"
        placement = Text(s.placement) + (Text("\nmaintenance (503)", "bold yellow") if s.maintenance else Text())
        services.add_row(Text(s.service), Text("\n".join(s.domains) or "-"), placement,
                         Text(", ".join(running) or "none"),
                         Text(", ".join(digests) or "-"), Text(s.backend or "(shared)"),
                         Text(servers, "red" if any(v.split()[0] != "UP" for v in s.servers.values()) else ""),
                         Text(_http(s.http)))
    out.print(services)

    shared = [b for b in st.backends if b.service is None and b.servers]
    if shared:
        table = Table(title=f"other backends on {st.serving_node}", title_justify="left")
        for col in ("backend", "server", "status", "check", "http"):
            table.add_column(col)
        for b in shared:
            for i, sv in enumerate(b.servers):
                table.add_row(Text(b.name if i == 0 else ""), Text(sv.name),
                              Text(sv.status or "?", "green" if (sv.status or "").startswith("UP") else "red"),
                              Text(sv.check_desc or sv.check_status or ""), Text(_http(b.http) if i == 0 else ""))
        out.print(table)
    if st.volumes:
        table = Table(title="data volumes · attached (the provider) · mounted (the nodes)", title_justify="left")
        for col in ("service", "volume", "mount", "attached", "mounted", "last call"):
            table.add_column(col)
        for v in st.volumes:
            last = v.last_action
            table.add_row(Text(v.service), Text(v.volume), Text(v.mount),
                          Text(v.attached_error and f"unknown ({v.attached_error})" or v.attached or "nowhere",
                               "red" if v.attached_error or v.attached != st.holder else ""),
                          Text(", ".join(v.mounted) or "nowhere", "red" if v.mounted != [st.holder] else ""),
                          Text(f"{last['action']} {last['outcome']} {last.get('status') or ''}".strip() if last else "-",
                               "red" if last and last["outcome"] not in ("attached", "detached") else ""))
        out.print(table)
    cert = getattr(st, "certificate", None)
    if cert is not None:
        if cert.not_after is None:
            out.print(Text(f"certificate: expiry unknown ({cert.error})", "yellow"))
        else:
            note = {"warning": ": renew it (`dynia cert renew`) and check the job that runs it",
                    "failed": ": renew it now (`dynia cert renew`)"}.get(cert.level, "")
            out.print(Text(f"certificate: expires {cert.not_after[:10]} ({cert.days_left} days){note}",
                           {"warning": "yellow", "failed": "red"}.get(cert.level, "")))
    out.print(Text(st.verdict, "bold green" if st.healthy else "bold red"))
    for p in st.problems[1:]:
        out.print(Text(f"  also: {p}", "red"))
