import pytest
from django.utils import timezone


@pytest.fixture(autouse=True)
def _fresh_now(request):
    """Modules here age their rows from a module-level ``NOW``; runs refuse a clock more
    than 5 minutes off PostgreSQL's, and a long suite reaches a module well after its
    import: ``NOW`` is set afresh before each test."""
    if hasattr(request.module, "NOW"):
        request.module.NOW = timezone.now()
