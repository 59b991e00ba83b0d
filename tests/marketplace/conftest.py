import importlib

import pytest


@pytest.fixture
def search_reference_data():
    """The cities and trade categories migration 0005 seeds: a transactional test's flush
    empties their tables, so search tests seed them again (idempotent)."""
    from django.apps import apps

    importlib.import_module("marketplace.migrations.0005_search_index").seed(apps, None)
