"""``python -m bench``: mcsf's benchmarks on the sandbox, against the obvious peers.

See ``docs/benchmarks.md`` for the method, the request lower bounds and the latest figures.
"""
