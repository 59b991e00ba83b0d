"""Hostile input against the real web process (gunicorn, as the Procfile runs it): a 4xx,
never a 500, and no personal data in its log lines; job creation limited per user."""

import base64
import json
import sys
import time

import pytest
import requests
from django.conf import settings
from django.core import signing
from django.test import Client

from marketplace.models import Order, OrderStatus, Review
from notifications.services.consent import email_preference_update, unsubscribe_url
from tests.conftest import ManagePy, child_env, free_port, wait_until
from tests.notifications.conftest import make_user
from tests.notifications.test_webhooks_and_consent import (
    GOOD_AUTH,
    postmark_bounce,
    sendgrid_events,
    ses_bounce,
)

VICTIM = "victim@example.com"


class Web(ManagePy):
    """``gunicorn config.wsgi`` on the test database and Redis, as the Procfile runs it."""

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__(env=child_env(), name="web", command=[
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind",
            f"127.0.0.1:{self.port}", "--workers", "1", "--access-logfile", "-",
            "--logger-class", "config.access_log.ScrubbingLogger"])
        wait_until(self._up, timeout=60, interval=0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the web process exited:\n{self.output()[-3000:]}")
        try:
            return requests.get(self.url + "/health/live", timeout=5).status_code == 200
        except requests.RequestException:
            return False


@pytest.fixture
def web(transactional_db):
    server = Web()
    yield server
    server.close()


def auth(credentials: str = GOOD_AUTH) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


# Twelve bodies an ESP would never post, each to be answered 400.
HOSTILE = {
    "malformed": (b'{"RecordType": "Bounce", "Email": "victim@example.com",', "application/json"),
    "truncated": (json.dumps(postmark_bounce(VICTIM, "m-1")).encode()[:80], "application/json"),
    "empty list": (b"[]", "application/json"),
    "null": (b"null", "application/json"),
    "bare string": (b'"victim@example.com"', "application/json"),
    "empty": (b"", "application/json"),
    "invalid utf-8": (b'{"Email": "victim@example.com\xff\xfe"}', "application/json"),
    "deep": (b"[" * 50_000 + b"]" * 50_000, "application/json"),
    "text": (b"Email: victim@example.com", "text/html"),
    "form": (b"Email=victim%40example.com&Type=HardBounce",
             "application/x-www-form-urlencoded"),
    "multipart": (b'--b\r\nContent-Disposition: form-data; name="Email"\r\n\r\n'
                  b"victim@example.com\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    "huge number": (b'{"RecordType": "Bounce", "ID": 1e999, "Email": "victim@example.com"}',
                    "application/json"),
}
ESP_URLS = {
    "postmark": "/webhooks/anymail/postmark/tracking/",
    "amazon_ses": "/webhooks/anymail/amazon_ses/tracking/",
    "sendgrid": "/webhooks/anymail/sendgrid/tracking/",
}
SES_HEADERS = {"x-amz-sns-message-type": "Notification", "x-amz-sns-message-id": "sns-1"}


def test_malformed_webhook_bodies_get_a_400_and_leave_no_address_in_the_logs(web):
    answers = {}
    for esp, path in ESP_URLS.items():
        for name, (body, content_type) in HOSTILE.items():
            headers = {**auth(), "Content-Type": content_type,
                       **(SES_HEADERS if esp == "amazon_ses" else {})}
            response = requests.post(web.url + path, data=body, headers=headers, timeout=30)
            answers[(esp, name)] = response.status_code

    # 36 cases: every one a 400 (before: 500, which ESPs answer by posting again)
    assert len(answers) == 36
    assert {key: code for key, code in answers.items() if code != 400} == {}
    time.sleep(0.5)
    log = web.output()
    assert log.count("ESP webhook refused: malformed body") == 36
    assert VICTIM not in log and "victim%40example.com" not in log
    assert "Traceback" not in log


def test_well_formed_webhooks_still_work_and_bad_credentials_are_refused(web):
    bounce = json.dumps(postmark_bounce("gone@example.test", "m-2")).encode()
    ok = requests.post(web.url + ESP_URLS["postmark"], data=bounce, timeout=10,
                       headers={**auth(), "Content-Type": "application/json"})
    body, headers = ses_bounce("gone@example.test")
    ses = requests.post(web.url + ESP_URLS["amazon_ses"], data=body.encode(), timeout=10,
                        headers={**auth(), "Content-Type": "text/plain; charset=UTF-8",
                                 **{k.removeprefix("HTTP_").replace("_", "-").lower(): v
                                    for k, v in headers.items()}})
    events = json.dumps(sendgrid_events("gone@example.test", "bounce", type="bounce")).encode()
    sendgrid = requests.post(web.url + ESP_URLS["sendgrid"], data=events, timeout=10,
                             headers={**auth(), "Content-Type": "application/json"})
    refused = requests.post(web.url + ESP_URLS["postmark"], data=b"[]", timeout=10,
                            headers={**auth("esp-webhook:wrong"),
                                     "Content-Type": "application/json"})

    assert (ok.status_code, ses.status_code, sendgrid.status_code) == (200, 200, 200)
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers


def session_for(user) -> requests.Session:
    """A browser session of ``user`` against the real web process (session and CSRF
    cookies, as a logged-in page would hold them)."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    secret = "c" * 32
    session.cookies.set("csrftoken", secret)
    session.headers.update({"X-CSRFToken": secret, "Content-Type": "application/json"})
    return session


def completed_orders(client_user, count: int) -> list[Order]:
    contractor = make_user("pro@example.test", is_contractor=True)
    return [Order.objects.create(client=client_user, contractor=contractor, title=f"Job {i}",
                                 status=OrderStatus.COMPLETED, province="ON")
            for i in range(count)]


def test_the_review_endpoint_answers_bad_input_with_a_400(web):
    user = make_user()
    [order] = completed_orders(user, 1)
    session = session_for(user)
    url = f"{web.url}/orders/{order.pk}/review"

    bad = {
        "huge number": b'{"rating": 1e309}',
        "deep": b'{"rating": 5, "text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "float": b'{"rating": 4.5}',
        "bool": b'{"rating": true}',
        "string": b'{"rating": "5"}',
        "out of range": b'{"rating": 6}',
        "list": b"[5]",
        "not json": b"rating=5",
        "text not text": b'{"rating": 5, "text": {"a": 1}}',
    }
    answers = {name: session.post(url, data=body, timeout=30).status_code
               for name, body in bad.items()}

    # before: 500 for the huge number (OverflowError) and the deep body (RecursionError)
    assert answers == dict.fromkeys(bad, 400)
    assert not Review.objects.exists()
    good = session.post(url, data=b'{"rating": 5, "text": "Great work"}', timeout=10)
    assert good.status_code == 201
    assert "Traceback" not in web.output()


def test_a_signed_verification_token_of_another_shape_is_a_400(web):
    token = signing.TimestampSigner(salt="notifications.email-verification").sign_object(
        [1, 2, 3], compress=True)
    response = requests.get(f"{web.url}/account/verify-email/", params={"token": token},
                            timeout=10)
    assert response.status_code == 400  # before: 500 (AttributeError on a list)
    assert "Traceback" not in web.output()


def test_a_used_unsubscribe_link_says_so_on_get_as_well_as_post(web):
    user = make_user()
    preference = email_preference_update(user=user, via="test")
    link = unsubscribe_url(preference).replace(settings.SITE_URL.rstrip("/"), web.url)

    assert requests.get(link, timeout=10).status_code == 200
    assert requests.post(link, timeout=10).status_code == 200
    again_get, again_post = requests.get(link, timeout=10), requests.post(link, timeout=10)

    for response in (again_get, again_post):  # before: GET offered the button again
        assert response.status_code == 400
        assert "already used" in response.text


def test_review_creation_is_limited_per_user_with_a_429_and_retry_after(web, broker):
    from jobs.http import ENDPOINT_LIMITS

    limit = ENDPOINT_LIMITS["review-create"].limit
    user = make_user()
    orders = completed_orders(user, limit + 1)
    session = session_for(user)

    answers = [session.post(f"{web.url}/orders/{order.pk}/review", data=b'{"rating": 4}',
                            timeout=10) for order in orders]

    # Then the first ``limit`` reviews are made, and queue their contractor's rating job
    # (debounced: one for the burst); the next gets a 429 with Retry-After, and nothing
    # (before: 119 posts, 119 jobs)
    assert [a.status_code for a in answers] == [201] * limit + [429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 3600
    assert answers[-1].json()["error"] == "rate_limited"
    assert Review.objects.count() == limit
    assert broker.do_qsize("analytics") == 1
    # Another user has an allowance of their own
    other = make_user("other@example.test")
    order = Order.objects.create(client=other, contractor=orders[0].contractor, title="Other",
                                 province="ON", status=OrderStatus.COMPLETED)
    assert session_for(other).post(f"{web.url}/orders/{order.pk}/review",
                                   data=b'{"rating": 4}', timeout=10).status_code == 201
