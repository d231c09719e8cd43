"""Snippets type-checked with mypy by ``tests/workflow/mypy_check.py``; never run."""
