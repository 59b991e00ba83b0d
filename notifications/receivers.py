"""Receivers of anymail's signals. They only hand the event to a service."""

from anymail.signals import AnymailTrackingEvent

from notifications import services


def on_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    services.email_tracking_event_record(event=event, esp_name=esp_name)
