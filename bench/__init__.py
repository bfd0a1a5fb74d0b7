"""Benchmarks of bootstrap against mmdebstrap and debootstrap, on a frozen loopback copy of the archive.

`python -m bench` (as root) serves the archive from a pull-through cache on 127.0.0.1 (bench.mirror), times
each tool in turn (bench.runner, bench.measure), measures index parsing, resolving and `check` (bench.micro),
and prints a table and writes a JSON file (bench.report) with targets marked PASS or MISS (bench.stats).
"""
