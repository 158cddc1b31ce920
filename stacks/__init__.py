"""One Pulumi program per phase (installed as dynia.stacks). Imported lazily by the engine."""
