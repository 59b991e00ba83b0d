"""Devices: where a user receives push. Their OneSignal subscription ids are encrypted at
rest (Fernet under ``JOB_PAYLOAD_KEYS``) and found by a keyed hash; they are never logged,
shown in admin, or put in a job's arguments."""

import hashlib
import hmac
import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.encryption import payload_fernet
from marketplace.models import User
from notifications.models import Device, Platform

logger = logging.getLogger("notifications.services")

MAX_SUBSCRIPTION_ID_LENGTH = 128


class InvalidDevice(ValueError):
    """The platform or the subscription id is not one a device can have."""


def subscription_id_hash(subscription_id: str) -> str:
    key = hashlib.sha256(b"jobsite-device-subscription:" + settings.SECRET_KEY.encode())
    return hmac.new(key.digest(), subscription_id.encode(), hashlib.sha256).hexdigest()


def subscription_id_decrypt(encrypted: str) -> str:
    """A device's subscription id, decrypted (to address it in a OneSignal request)."""
    return payload_fernet().decrypt(encrypted.encode()).decode()


def device_register(*, user: User, platform: str, subscription_id: str) -> Device:
    """Register (or refresh) ``user``'s device. A subscription id seen on another user's
    account moves to this one: the phone changed hands or accounts.

    Raises:
      InvalidDevice: unknown platform, or a subscription id that is empty or too long.
    """
    if platform not in Platform.values:
        raise InvalidDevice(f"platform must be one of {', '.join(Platform.values)}.")
    if (not isinstance(subscription_id, str) or not subscription_id.strip()
            or len(subscription_id) > MAX_SUBSCRIPTION_ID_LENGTH
            or any(not ch.isprintable() for ch in subscription_id)):
        raise InvalidDevice("subscription_id must be 1 to 128 printable characters.")
    subscription_id = subscription_id.strip()
    digest = subscription_id_hash(subscription_id)
    now = timezone.now()
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(subscription_id_hash=digest).first()
        if device is None:
            device = Device.objects.create(
                user=user, platform=platform, subscription_id_hash=digest,
                subscription_id_encrypted=payload_fernet().encrypt(
                    subscription_id.encode()).decode())
        else:
            device.user, device.platform, device.is_active = user, platform, True
            device.last_seen_at, device.deactivated_at, device.deactivated_reason = now, None, ""
            device.save()
    logger.info("device registered", extra={"device_id": device.pk, "platform": platform})
    return device


def device_remove(*, user: User, device_id: int) -> bool:
    """The user signed out of push on a device. Returns whether they had it."""
    return bool(Device.objects.filter(pk=device_id, user=user, is_active=True).update(
        is_active=False, deactivated_at=timezone.now(), deactivated_reason="removed"))


def devices_deactivate(*, subscription_ids: Iterable[str] = (), user_ids: Iterable[int] = (),
                       reason: str) -> int:
    """Deactivate the devices OneSignal reported as invalid: by subscription id, or all of
    the given users' devices (an external id with no subscribed device). Returns how many."""
    hashes = [subscription_id_hash(i) for i in subscription_ids]
    now = timezone.now()
    count = 0
    if hashes:
        count += Device.objects.filter(subscription_id_hash__in=hashes, is_active=True).update(
            is_active=False, deactivated_at=now, deactivated_reason=reason)
    user_ids = list(user_ids)
    if user_ids:
        count += Device.objects.filter(user_id__in=user_ids, is_active=True).update(
            is_active=False, deactivated_at=now, deactivated_reason=reason)
    if count:
        logger.info("devices deactivated", extra={"count": count, "reason": reason})
    return count
