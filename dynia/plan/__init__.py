"""The offline plan: unified diffs, the spec at a git revision (--against), the plan's output."""
