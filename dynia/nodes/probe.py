"""Read-only questions to every node at once over SSH (capped parallelism, timeouts)."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from ..errors import DyniaError
from .push import Target, connect

PARALLEL = 8


async def _read(target: Target, path: str, sem: asyncio.Semaphore, timeout: float) -> str | None:
    import asyncssh

    async with sem:
        try:
            conn = await connect(replace(target, connect_timeout=timeout))
        except DyniaError:  # unreachable: this node has no answer
            return None
        try:
            async with asyncio.timeout(timeout):
                r = await conn.run(f"cat {path}", check=False)
            return r.stdout if r.exit_status == 0 else None
        except (OSError, asyncio.TimeoutError, asyncssh.Error):
            return None
        finally:
            conn.close()


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
    from ..cache import ClusterCache
    from ..doctor import ssh_key_path

    outputs = ClusterCache.of(cluster).read_outputs()
    if outputs is None:
        return []
    if cluster.spec.provider.kind == "local":
        lab = cluster.project.lab_dir(cluster.name)
        key, known = lab / "id_ed25519", lab / "known_hosts"
    else:
        key, known = ssh_key_path(), None
    return [Target(n, a.public_ip or a.private_ip, Path(key), known)
            for n, a in outputs.nodes.items() if n in cluster.spec.nodes]
