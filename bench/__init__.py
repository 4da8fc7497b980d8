"""Benchmarks: `python bench/<name>.py --help`; bench/README.md has the latest figures."""
