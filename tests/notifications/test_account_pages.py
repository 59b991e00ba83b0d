"""The pages behind the verification and password-reset links of Jobsite email."""

import logging
import re
import time
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from audit.models import AuditLog
from marketplace.models import RefreshToken, User, UserSession
from notifications import tokens
from notifications.models import EmailKind
from notifications.rendering import render_email
from tests.notifications.conftest import make_user

SITE = "http://127.0.0.1:8000"
NEW_PASSWORD = "kayak-Maple-7-lantern"
OLD_PASSWORD = "pw-ada-12345"  # make_user's
VERIFIED_EN = "Your email address is confirmed."
VERIFIED_FR = "Votre adresse courriel est confirmée."
VERIFY_INVALID = ("This verification link is invalid or has expired.",
                  "Ce lien de vérification est invalide ou a expiré.")
RESET_INVALID = ("This password reset link is invalid, has expired or was already used.",
                 "Ce lien de réinitialisation du mot de passe est invalide")


def email_link(kind: EmailKind, user: User) -> str:
    """The site path of the action link in ``kind``'s email to ``user``, as rendered."""
    rendered = render_email(kind=kind, user=user, context={})
    [url] = {url for url in re.findall(r'href="([^"]+)"', rendered.html)
             if "/account/" in url}
    assert url in rendered.text
    assert url.startswith(SITE)
    return url.removeprefix(SITE).replace("&amp;", "&")


def csrf_token(response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                     response.content.decode())[1]


def text(response) -> str:
    return response.content.decode()


# --- Email verification -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_emailed_verification_link_verifies_once_and_is_audited(client, caplog):
    caplog.set_level(logging.DEBUG)
    # Given a user who received the verification email
    user = make_user()
    link = email_link(EmailKind.EMAIL_VERIFICATION, user)
    assert link.startswith("/account/verify-email/?token=")

    # When they open the link, without being logged in
    response = client.get(link)

    # Then their address is verified, the page says so, and the audit log has it
    assert response.status_code == 200
    assert VERIFIED_EN in text(response)
    assert '<html lang="en">' in text(response)
    user.refresh_from_db()
    verified_at = user.email_verified_at
    assert verified_at is not None
    [entry] = AuditLog.objects.filter(action="auth.email_verified")
    assert (entry.resource_type, entry.resource_id, entry.actor_id, entry.metadata) == (
        "marketplace.user", str(user.pk), user.pk, {"via": "verification_link"})

    # A second click says verified again and changes nothing
    again = client.get(link)
    assert again.status_code == 200
    assert VERIFIED_EN in text(again)
    user.refresh_from_db()
    assert user.email_verified_at == verified_at
    assert AuditLog.objects.filter(action="auth.email_verified").count() == 1

    # Neither the address nor the token reached a log line
    token = link.split("token=", 1)[1]
    for record in caplog.records:
        logged = f"{record.getMessage()} {record.__dict__}"
        assert user.email not in logged
        assert token not in logged


@pytest.mark.django_db
def test_a_french_user_reads_the_verification_page_in_french(client):
    user = make_user(language="fr")

    response = client.get(email_link(EmailKind.EMAIL_VERIFICATION, user))

    assert response.status_code == 200
    assert VERIFIED_FR in text(response)
    assert '<html lang="fr">' in text(response)
    assert VERIFIED_EN not in text(response)


def _made_seconds_ago(monkeypatch, seconds: int, user: User) -> str:
    """The emailed verification link as if it had been sent ``seconds`` ago."""
    past = signing.b62_encode(int(time.time()) - seconds)
    with monkeypatch.context() as patch:
        patch.setattr(signing.TimestampSigner, "timestamp", lambda self: past)
        return email_link(EmailKind.EMAIL_VERIFICATION, user)


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["tampered", "expired", "address_changed", "user_deleted",
                                  "missing", "other_purpose"])
def test_a_bad_verification_link_is_refused_with_the_same_page(client, settings, monkeypatch,
                                                               stderr_output, case):
    # Given a French user (the refusal must not reveal even the language of an account)
    settings.EMAIL_VERIFICATION_MAX_AGE = 3600
    user = make_user(language="fr")
    link = email_link(EmailKind.EMAIL_VERIFICATION, user)
    if case == "tampered":
        link = link[:-2] + ("xx" if not link.endswith("xx") else "yy")
    elif case == "expired":
        link = _made_seconds_ago(monkeypatch, 3601, user)
    elif case == "address_changed":
        User.objects.filter(pk=user.pk).update(email="new-address@example.test")
    elif case == "user_deleted":
        User.objects.filter(pk=user.pk).delete()
    elif case == "missing":
        link = "/account/verify-email/"
    elif case == "other_purpose":
        # a token signed for another purpose (the unsubscribe salt) is not a verification
        link = f"/account/verify-email/?token={tokens.unsubscribe_token(user.pk, 0)}"

    # When the link is opened
    response = client.get(link)

    # Then it is refused, bilingually, and nothing changed
    assert response.status_code == 400
    assert all(line in text(response) for line in VERIFY_INVALID)
    assert VERIFIED_FR not in text(response)
    assert not User.objects.filter(email_verified_at__isnull=False).exists()
    assert not AuditLog.objects.exists()
    # Django logs the refusal ("Bad Request"); the line written has the path, not the token
    written = stderr_output.getvalue()
    assert "Bad Request: /account/verify-email/" in written
    query = link.partition("?")[2]
    assert not query or query not in written


@pytest.mark.django_db
def test_a_verification_link_made_within_its_lifetime_still_works(client, settings,
                                                                  monkeypatch):
    # The counterpart of the "expired" case: the same back-dating, inside the lifetime.
    settings.EMAIL_VERIFICATION_MAX_AGE = 3600
    user = make_user()

    response = client.get(_made_seconds_ago(monkeypatch, 3540, user))

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.email_verified_at is not None


@pytest.mark.django_db
def test_the_refusal_page_is_the_same_for_an_unknown_and_a_known_user(client):
    known = make_user(language="fr")
    tampered = email_link(EmailKind.EMAIL_VERIFICATION, known)[:-2] + "xx"
    deleted = make_user("gone@example.test")
    gone = email_link(EmailKind.EMAIL_VERIFICATION, deleted)
    deleted.delete()

    assert client.get(tampered).content == client.get(gone).content


# --- Password reset -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_emailed_reset_link_sets_a_new_password_once_and_is_audited():
    client = Client(enforce_csrf_checks=True)  # the form posts with CSRF, no exemption
    # Given a user who received the password-reset email
    user = make_user()
    # and is signed in on a phone, with a refresh token (someone who knew the old
    # password may be)
    session = UserSession.objects.create(user=user, session_key_hash="s" * 64,
                                         expires_at=timezone.now() + timedelta(days=30))
    refresh = RefreshToken.objects.create(user=user, session=session, token_hash="r" * 64,
                                          expires_at=timezone.now() + timedelta(days=30))
    link = email_link(EmailKind.PASSWORD_RESET, user)
    assert re.fullmatch(r"/account/reset-password/[\w-]+/[\w-]+/", link)

    # When they open the link, Django moves the token into the session and the URL drops it
    opened = client.get(link)
    assert opened.status_code == 302
    form_path = opened["Location"]
    assert form_path == link.rsplit("/", 2)[0] + "/set-password/"
    form_page = client.get(form_path)
    assert form_page.status_code == 200
    assert "Choose a new password." in text(form_page)
    assert 'name="new_password1"' in text(form_page)
    assert 'name="new_password2"' in text(form_page)

    # A post without the CSRF token is refused
    refused = client.post(form_path, {"new_password1": NEW_PASSWORD,
                                      "new_password2": NEW_PASSWORD})
    assert refused.status_code == 403

    # When they post a new password with the form's CSRF token
    done = client.post(form_path, {"csrfmiddlewaretoken": csrf_token(form_page),
                                   "new_password1": NEW_PASSWORD,
                                   "new_password2": NEW_PASSWORD})

    # Then the password is changed, they are not logged in, and the audit log has it
    assert done.status_code == 302
    assert done["Location"] == "/account/reset-password/done/"
    complete = client.get(done["Location"])
    assert complete.status_code == 200
    assert "Your password has been changed." in text(complete)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not user.check_password(OLD_PASSWORD)
    assert "_auth_user_id" not in client.session
    [entry] = AuditLog.objects.filter(action="auth.password_reset")
    assert (entry.resource_type, entry.resource_id, entry.actor_id, entry.metadata) == (
        "marketplace.user", str(user.pk), user.pk,
        {"via": "reset_link", "sessions_revoked": 1, "refresh_tokens_revoked": 1})
    # and the app's sessions and refresh tokens are over
    session.refresh_from_db()
    refresh.refresh_from_db()
    assert not session.is_active
    assert refresh.revoked and not refresh.is_active

    # The link, and the form behind it, no longer work
    for path in (link, form_path):
        reused = client.get(path)
        assert reused.status_code == 200
        assert all(line in text(reused) for line in RESET_INVALID)
        assert 'name="new_password1"' not in text(reused)
    assert AuditLog.objects.filter(action="auth.password_reset").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["tampered_token", "unknown_user", "garbage_uid",
                                  "form_without_link"])
def test_a_bad_reset_link_shows_the_invalid_link_page(client, case):
    # Given a French user and a link that is not theirs to use
    user = make_user(language="fr")
    link = email_link(EmailKind.PASSWORD_RESET, user)
    uidb64 = link.split("/")[-3]
    if case == "tampered_token":
        link = link[:-3] + ("xx" if not link.endswith("xx/") else "yy") + "/"
    elif case == "unknown_user":
        link = link.replace(f"/{uidb64}/", "/OTk5OTk5/")  # user 999999
    elif case == "garbage_uid":
        link = link.replace(f"/{uidb64}/", "/!!!/")
    elif case == "form_without_link":
        link = f"/account/reset-password/{uidb64}/set-password/"  # no token in the session

    # When it is opened, and when a new password is posted to it
    opened = client.get(link)
    posted = client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    # Then both show the invalid-link page (bilingual) and the password is unchanged
    for response in (opened, posted):
        assert response.status_code == 200
        assert all(line in text(response) for line in RESET_INVALID)
        assert 'name="new_password1"' not in text(response)
        assert '<html lang="en">' in text(response)
    user.refresh_from_db()
    assert user.check_password(OLD_PASSWORD)
    assert not AuditLog.objects.exists()


@pytest.mark.django_db
def test_a_french_user_resets_in_french_and_a_refused_password_changes_nothing(client):
    user = make_user(language="fr")
    form_path = client.get(email_link(EmailKind.PASSWORD_RESET, user))["Location"]

    form_page = client.get(form_path)
    assert '<html lang="fr">' in text(form_page)
    assert "Choisissez un nouveau mot de passe." in text(form_page)
    assert "Nouveau mot de passe" in text(form_page)  # Django's own label, translated
    assert "Choose a new password." not in text(form_page)

    # Django's validation messages come in French too, and nothing is saved
    mismatch = client.post(form_path, {"new_password1": NEW_PASSWORD,
                                       "new_password2": NEW_PASSWORD + "x"})
    assert mismatch.status_code == 200
    assert "Les deux mots de passe ne correspondent pas." in text(mismatch)
    too_short = client.post(form_path, {"new_password1": "k7x", "new_password2": "k7x"})
    assert "Ce mot de passe est trop court." in text(too_short)
    user.refresh_from_db()
    assert user.check_password(OLD_PASSWORD)
    assert not AuditLog.objects.exists()


# --- Admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_see_email_verified_at_read_only(staff_client):
    user = make_user()
    staff_client.get(email_link(EmailKind.EMAIL_VERIFICATION, user))

    page = staff_client.get(f"/admin/marketplace/user/{user.pk}/change/")

    assert page.status_code == 200
    assert "Email verified at" in text(page)
    assert 'name="email_verified_at"' not in text(page)
