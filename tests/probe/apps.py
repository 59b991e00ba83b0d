from django.apps import AppConfig


class ProbeConfig(AppConfig):
    """Test-only actors for the worker processes the recovery tests start (installed by
    ``config.settings_test`` only)."""

    name = "tests.probe"
    label = "probe"
