"""rarenet coordinator: enrols sites, verifies signed summaries, keeps the ledger, benchmarks."""

__version__ = "0.1.0"
