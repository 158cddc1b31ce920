"""The cluster spec and its inputs: the models (model), the operator's compose files (compose),
loading a cluster (load: bytes → spec → compose files), editing, which cluster a command
acts on (selection), the names dynia keeps for itself (reserved)."""
