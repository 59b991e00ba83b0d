"""Refused email links leave no token in the log lines the project writes."""

import json

import pytest
from django.contrib.auth.tokens import default_token_generator

from jobs.scrub import scrub_path
from notifications import tokens
from notifications.models import EmailPreference
from notifications.services.consent import unsubscribe_url
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db


def test_refused_links_log_their_path_without_tokens(client, stderr_output):
    user = make_user()
    preference, _ = EmailPreference.objects.get_or_create(user=user)
    unsubscribe_path = unsubscribe_url(preference).split("://", 1)[-1].partition("/")[2]
    unsubscribe_token = unsubscribe_path.rstrip("/").rsplit("/", 1)[-1]
    verify_token = tokens.email_verification_token(user)
    reset_token = default_token_generator.make_token(user)

    # An unsubscribe link whose signature was altered, a verification link that was
    # tampered with, and a reset link of a user that does not exist: all refused
    bad_unsubscribe = "/" + unsubscribe_path.replace(unsubscribe_token, unsubscribe_token + "x")
    assert client.get(bad_unsubscribe).status_code == 400
    assert client.get(f"/account/verify-email/?token={verify_token}x").status_code == 400
    assert client.get(f"/email/unsubscribe/{unsubscribe_token}x/nothing-here/").status_code == 404
    client.get(f"/account/reset-password/OTk5OTk5/{reset_token}/")

    lines = [json.loads(line) for line in stderr_output.getvalue().splitlines()]
    request_lines = [line for line in lines if line["logger"].startswith("django.request")]
    assert {line["msg"].split(":")[0] for line in request_lines} >= {"Bad Request", "Not Found"}
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in (unsubscribe_token.split(":")[-1], verify_token.split(":")[-1], reset_token,
                   user.email):
        assert secret not in text
    # What is left still says which page was refused
    assert any(line["msg"].startswith("Bad Request: /email/unsubscribe/")
               for line in request_lines)
    assert all((line.get("request") or "GET /").startswith("GET /") for line in request_lines)


@pytest.mark.parametrize(("path", "expected"), [
    ("/account/verify-email/?token=eyJ1Ijo1fQ:1tXq9r:abcDEF123ghiJKL456mno",
     "/account/verify-email/?[redacted]"),
    ("/account/reset-password/MQ/cd1w5x-8f3c2b1e0d9a7f6e5d4c/",
     "/account/reset-password/MQ/[secret]/"),
    ("/orders/42/review", "/orders/42/review"),
    ("/admin/jobs/failedjob/", "/admin/jobs/failedjob/"),
])
def test_scrub_path(path, expected):
    assert scrub_path(path) == expected
