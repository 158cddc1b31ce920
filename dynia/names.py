"""Two-word node ids (misty-owl). Stable once written: Pulumi resource names derive from them."""
from __future__ import annotations

import hashlib

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
