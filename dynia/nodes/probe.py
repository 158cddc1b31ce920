"""Read-only questions to every node at once over SSH (capped parallelism, timeouts)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from .push import Target

PARALLEL = 8


async def _read(target: Target, path: str, sem: asyncio.Semaphore, timeout: float) -> str | None:
    import asyncssh

    async with sem:
        try:
            async with asyncio.timeout(timeout):
                async with asyncssh.connect(target.host, username=target.user, client_keys=[str(target.key)],
                                            known_hosts=str(target.known_hosts) if target.known_hosts else None) as c:
                    r = await c.run(f"cat {path}", check=False)
                    return r.stdout if r.exit_status == 0 else None
        except (OSError, asyncio.TimeoutError, asyncssh.Error):
            return None


def read_all(targets: list[Target], path: str, timeout: float = 5.0) -> dict[str, str | None]:
    async def main():
        sem = asyncio.Semaphore(PARALLEL)
        values = await asyncio.gather(*(_read(t, path, sem, timeout) for t in targets))
        return {t.node: v for t, v in zip(targets, values)}

    return asyncio.run(main())


def vip_holder(targets: list[Target]) -> str | None:
    """The node whose keepalived last reported MASTER (notify.sh), read live; None if unknown."""
    states = read_all(targets, "/opt/dynia/state/vrrp")
    masters = [n for n, s in states.items() if s and s.split()[0] == "MASTER"]
    return masters[0] if len(masters) == 1 else None


def targets_from_cache(cluster) -> list[Target]:
    import json

    from ..doctor import ssh_key_path

    path = cluster.project.cache_dir(cluster.name) / "outputs.json"
    if not path.exists():
        return []
    nodes = json.loads(path.read_text()).get("nodes", {})
    if cluster.spec.provider.kind == "local":
        lab = cluster.project.runtime / "lab" / cluster.name
        key, known = lab / "id_ed25519", lab / "known_hosts"
    else:
        key, known = ssh_key_path(), None
    return [Target(n, v.get("public_ip") or v["private_ip"], Path(key), known)
            for n, v in nodes.items() if n in cluster.spec.nodes]
