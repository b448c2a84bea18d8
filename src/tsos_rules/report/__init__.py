"""Renderings of findings and runs: a text table for people, JSON for machines, HTML reports."""
