"""Receivers of anymail's signals. They only hand the event to a service."""

from anymail.signals import AnymailTrackingEvent

from notifications.services.suppression import email_tracking_event_record


def on_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    email_tracking_event_record(event=event, esp_name=esp_name)
