from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Statistics"

    def ready(self) -> None:
        from analytics import checks  # noqa: F401  (registers analytics.E001)
