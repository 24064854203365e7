"""Kathikon's side-by-side benchmark (run ``python bench/run.py --help``; see bench/README.md)."""
