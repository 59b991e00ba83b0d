"""System checks of the marketplace.

- ``marketplace.E001``: ``SEARCH_BACKEND`` names a class that can be imported and has the
  :class:`marketplace.search.backends.SearchBackend` methods (a typo would otherwise
  surface as a 500 on the first search and a failed job on the first profile change).
"""

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string


@checks.register()
def search_backend_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    path = settings.SEARCH_BACKEND
    try:
        backend = import_string(path)
    except ImportError as exc:
        return [checks.Error(f"SEARCH_BACKEND={path!r} cannot be imported: {exc}",
                             id="marketplace.E001")]
    missing = [name for name in ("index_profiles", "search")
               if not callable(getattr(backend, name, None))]
    if missing:
        return [checks.Error(f"SEARCH_BACKEND={path!r} has no {', '.join(missing)}.",
                             hint="See marketplace.search.backends.SearchBackend.",
                             id="marketplace.E001")]
    return []
