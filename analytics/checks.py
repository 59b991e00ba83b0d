"""System checks of the statistics app.

- ``analytics.E001``: ``ANALYTICS_MIN_GROUP_SIZE`` is at least 1 (1 shows every group).
"""

from django.conf import settings
from django.core import checks


@checks.register()
def check_min_group_size(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    value = settings.ANALYTICS_MIN_GROUP_SIZE
    if isinstance(value, int) and value >= 1:
        return []
    return [checks.Error(f"ANALYTICS_MIN_GROUP_SIZE is {value!r}: it must be a whole number "
                         "of at least 1 (groups of fewer people are suppressed).",
                         id="analytics.E001")]
