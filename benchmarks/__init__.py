"""vlab's benchmark suite (``nox -s bench`` / ``python -m benchmarks``); see __main__."""
