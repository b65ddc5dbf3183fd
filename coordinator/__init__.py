"""rarenet coordinator: enrols sites, verifies signed summaries, keeps the ledger, benchmarks."""
