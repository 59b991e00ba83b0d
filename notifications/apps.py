from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from anymail.signals import tracking

        from notifications import checks  # noqa: F401  (registers the template check)
        from notifications.receivers import on_tracking_event

        tracking.connect(on_tracking_event, dispatch_uid="notifications.tracking")
