"""Benchmarks of the harness: `python -m bench [--only NAME ...] [--quick]` (or `make bench`). See bench/README.md."""
