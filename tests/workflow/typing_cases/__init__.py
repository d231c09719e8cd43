"""Snippets type-checked by ``test_parallel_typing`` with mypy; never run."""
