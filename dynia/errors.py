"""Typed errors: every failure the operator sees is a DyniaError with one hint.

Exit codes are part of the CLI contract (README, "Exit codes"): scripts and CI branch on
them, so a kind's code never changes once released.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EXIT_CODES: dict[str, int] = {
    "config": 10,
    "state": 11,
    "render": 12,
    "provider": 13,
    "network": 14,
    "sync": 15,
    "health": 16,
    "dns": 17,
    "cert": 18,
    "engine": 19,
}
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
# `dynia plan --offline --detailed-exitcode`: changes pending (terraform/pulumi convention).
EXIT_CHANGES = 3
# `dynia drift-check`: a node differs from the render (the same code: a repair would change it).
EXIT_DRIFT = EXIT_CHANGES
# `dynia status` / `dynia infra verify`: the cluster answered, and its verdict is not healthy.
EXIT_UNHEALTHY = 4


@dataclass
class DyniaError(Exception):
    kind: str
    message: str
    hint: str
    resume: str | None = None
    # set by an operation that failed before it kept, stored or pushed anything (dynia.operations.certs)
    nothing_kept: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in EXIT_CODES:
            raise ValueError(f"unknown error kind {self.kind!r}")
        super().__init__(self.message)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint,
                "resume": self.resume, "exit_code": self.exit_code}

    def __str__(self) -> str:
        return self.message


def config_error(message: str, hint: str) -> DyniaError:
    return DyniaError("config", message, hint)


def state_error(message: str, hint: str, resume: str | None = None) -> DyniaError:
    return DyniaError("state", message, hint, resume)


def render_error(message: str, hint: str) -> DyniaError:
    return DyniaError("render", message, hint)
