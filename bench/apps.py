from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by ``config.settings_bench``: its no-op actor, ``benchjobs``,
    ``benchretention`` and ``benchmarketplace`` exist nowhere else, so production never
    registers a benchmark actor."""

    name = "bench"
    verbose_name = "Benchmark"
