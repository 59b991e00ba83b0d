from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditLog
from marketplace.models import (
    ChatMessage,
    ContractorProfile,
    Order,
    RefreshToken,
    Review,
    User,
    UserSession,
)

MODELS = [User, ContractorProfile, Order, Review, ChatMessage, UserSession, RefreshToken,
          AuditLog]


def counts():
    return {model.__name__: model.objects.count() for model in MODELS}


@pytest.mark.django_db
def test_seed_demo_is_idempotent(tmp_path):
    password_file = tmp_path / "admin.txt"
    call_command("seed_demo", admin_password_file=str(password_file), stdout=StringIO())
    first = counts()
    password = password_file.read_text().strip()

    out = StringIO()
    call_command("seed_demo", admin_password_file=str(password_file), stdout=out)

    assert counts() == first
    assert password_file.read_text().strip() == password
    assert password in out.getvalue()
    admin = User.objects.get(email="admin@demo.jobsite.local")
    assert admin.is_staff and admin.check_password(password)


@pytest.mark.django_db
def test_seed_demo_gives_every_job_work():
    call_command("seed_demo", stdout=StringIO())
    assert set(User.objects.values_list("preferred_language", flat=True)) == {"en", "fr"}
    assert ChatMessage.objects.filter(is_read=True).count() > 0
    assert ChatMessage.objects.filter(is_read=False).count() > 0
    assert ContractorProfile.objects.count() == 4
    assert Review.objects.count() > 0
