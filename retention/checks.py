"""``retention.E001``: every model holding personal data has a retention policy."""

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import checks

from retention.policy import EXEMPT, POLICIES

#: Field names that are personal data wherever they appear.
PERSONAL_FIELDS = {"email", "first_name", "last_name", "phone", "address", "ip_address"}


def personal_data_models() -> set[str]:
    """Models that link to a user or hold a personal field, by ``app_label.model_name``."""
    user = get_user_model()
    found = set()
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = model._meta.concrete_fields
        if model is user or any(
                (f.is_relation and f.related_model is user) or f.name in PERSONAL_FIELDS
                for f in fields):
            found.add(model._meta.label_lower)
    return found


def uncovered_models() -> list[str]:
    covered = {label for policy in POLICIES for label in policy.models} | set(EXEMPT)
    return sorted(personal_data_models() - covered)


@checks.register()
def check_retention_policy(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [checks.Error(f"{label} holds personal data but no retention policy covers it",
                         id="retention.E001",
                         hint="Name it in a policy of retention/policy.py, or in EXEMPT "
                              "with the reason.")
            for label in uncovered_models()]
