"""Talking to nodes over SSH: pushes (apply), and later status and drift."""
