"""dynia: small high-availability clusters, planned and rolled node by node.

The version lives only in pyproject.toml; `dynia --version` reads the installed metadata.
"""
