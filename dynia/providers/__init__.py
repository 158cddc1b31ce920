"""Providers: everything that depends on where a cluster's nodes live.

`get(kind)` / `of(spec)` return the provider; nothing outside this package branches on
`provider.kind`. See base.Provider for the interface.
"""
from __future__ import annotations

from functools import cache

from .base import NodeProfile, Provider, SshIdentity

KINDS = ("digitalocean", "local")


@cache
def get(kind: str) -> Provider:
    if kind == "digitalocean":
        from .digitalocean import DigitalOcean

        return DigitalOcean()
    if kind == "local":
        from .local import Local

        return Local()
    raise ValueError(f"unknown provider kind {kind!r}")


def of(spec) -> Provider:
    return get(spec.provider.kind)


__all__ = ["KINDS", "NodeProfile", "Provider", "SshIdentity", "get", "of"]
