"""isol8rt's benchmarks. ``bench/harness`` is the harness behind ``isol8rt bench`` (source checkouts only:
the wheel ships ``isol8rt/`` alone); the ``bench_*.py`` scripts are older single-purpose benchmarks."""
