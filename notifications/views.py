"""The pages that links in Jobsite email lead to.

- One-click unsubscribe (RFC 8058), ``/email/unsubscribe/<token>/``.
- Email verification, ``/account/verify-email/?token=...``.
- Password reset, ``/account/reset-password/<uidb64>/<token>/`` (Django's own views).

None of them needs a login: the signed token in the link is the proof. A page about a
valid link speaks the user's language; a page about an invalid one is bilingual and says
no more than "invalid or expired", so it never tells whether an account exists.
"""

from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.response import SimpleTemplateResponse
from django.urls import reverse_lazy
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from notifications import tokens
from notifications.rendering import recipient_language
from notifications.services.accounts import email_verify, password_reset_completed
from notifications.services.consent import email_unsubscribe, unsubscribe_link_check


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation button (link scanners prefetch GETs, so GET changes
    nothing); POST unsubscribes, whether from that button or from a mail client's one-click
    ``List-Unsubscribe-Post``. Mail clients post without a CSRF token, and the signed
    single-use token is the proof the request is genuine, so the view is CSRF-exempt.
    """
    try:
        if request.method == "GET":
            unsubscribe_link_check(token=token)
        else:
            email_unsubscribe(token=token)
    except tokens.UsedToken:
        return render(request, "notifications/unsubscribe.html", {"state": "used"},
                      status=400)
    except tokens.InvalidToken:
        return render(request, "notifications/unsubscribe.html", {"state": "invalid"},
                      status=400)
    state = "confirm" if request.method == "GET" else "done"
    return render(request, "notifications/unsubscribe.html", {"state": state})


@never_cache
@require_GET
def verify_email(request: HttpRequest) -> HttpResponse:
    """Verify the address the link was sent to. Unlike unsubscribe, GET changes state:
    the token can do nothing but verify, only whoever receives mail at that address (or
    their mail filter, opening links first) has it, and verifying again changes nothing.
    """
    try:
        user = email_verify(token=request.GET.get("token", ""))
    except tokens.InvalidToken:
        # Django logs the 400 with the request; jobs.scrub.RequestLogFilter keeps the
        # token (the query string) out of the line.
        return render(request, "account/verify_email.html",
                      {"state": "invalid", "language": None}, status=400)
    return render(request, "account/verify_email.html",
                  {"state": "verified", "language": recipient_language(user)})


class PasswordResetConfirm(auth_views.PasswordResetConfirmView):
    """Django's reset view: the token URL stores the token in the session and redirects
    to ``.../set-password/``, whose form sets the new password. An unknown user or a bad,
    expired or used token gets the view's "invalid link" page. No login after the reset.
    """

    template_name = "account/password_reset_confirm.html"
    success_url = reverse_lazy("notifications:password-reset-complete")
    post_reset_login = False

    # Django calls get() and post() only once the link is known to be valid (self.user set).
    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return self._in_user_language(super().get, request, *args, **kwargs)

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return self._in_user_language(super().post, request, *args, **kwargs)

    def _in_user_language(self, handler, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # The password validators' messages are made while the form is validated, the
        # labels while the template renders: both must happen under the user's language,
        # so the response is rendered here rather than after the view returns.
        with translation.override(recipient_language(self.user)):
            response = handler(request, *args, **kwargs)
            if isinstance(response, SimpleTemplateResponse):
                response.render()
        return response

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        with transaction.atomic():
            response = super().form_valid(form)
            password_reset_completed(user=self.user)
        return response

    def get_context_data(self, **kwargs) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["language"] = recipient_language(self.user) if self.validlink else None
        return context


class PasswordResetComplete(auth_views.PasswordResetCompleteView):
    template_name = "account/password_reset_complete.html"
