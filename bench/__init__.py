"""HTTP server benchmarks for cupola (run on demand: ``make bench`` or ``python -m bench``)."""
