"""Names: two-word node ids (misty-owl), stable once written (Pulumi resource names derive from
them), and the rule cluster and service names follow."""
from __future__ import annotations

import hashlib
import re
from typing import Any

NODE_ID = re.compile(r"[a-z]{2,12}-[a-z]{2,12}")
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
NAME_RULE = "lower-case letters, digits and dashes, 2-32 characters, starting with a letter"


def is_name(value: Any) -> bool:
    """A cluster or service name: safe as a file name, a Pulumi stack part and a shell word."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None

ADJECTIVES = ("amber", "brave", "calm", "dusty", "eager", "fancy", "gentle", "happy", "icy",
              "jolly", "keen", "lucky", "misty", "noble", "olive", "proud", "quiet", "rapid",
              "sunny", "tidy", "urban", "vivid", "witty", "young", "zesty")
ANIMALS = ("owl", "panda", "otter", "lynx", "heron", "bison", "crane", "dingo", "eagle",
           "ferret", "gecko", "hare", "ibis", "koala", "lemur", "marten", "newt", "orca",
           "puffin", "quail", "raven", "seal", "tapir", "viper", "wombat", "yak", "zebra")


def node_ids(cluster: str, count: int, taken: tuple[str, ...] = ()) -> list[str]:
    """`count` new ids, deterministic for a cluster name, never one already taken."""
    out: list[str] = []
    i = 0
    while len(out) < count:
        h = int(hashlib.sha256(f"{cluster}/{i}".encode()).hexdigest(), 16)
        candidate = f"{ADJECTIVES[h % len(ADJECTIVES)]}-{ANIMALS[(h // 97) % len(ANIMALS)]}"
        if candidate not in out and candidate not in taken:
            out.append(candidate)
        i += 1
    return out
