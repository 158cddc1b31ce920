"""Pulumi ComponentResources of dynia (installed as dynia.components).

Knows nothing about the CLI; imported only by dynia.stacks and dynia.engine.automation, lazily.
"""
