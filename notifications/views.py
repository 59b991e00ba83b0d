"""The pages that links in Jobsite email lead to.

- One-click unsubscribe (RFC 8058), ``/email/unsubscribe/<token>/``.
- Email verification, ``/account/verify-email/?token=...``.

None of them needs a login: the signed token in the link is the proof. A page about a
valid link speaks the user's language; a page about an invalid one is bilingual and says
no more than "invalid or expired", so it never tells whether an account exists.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.log import log_response
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from notifications import services, tokens
from notifications.rendering import recipient_language


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation button (link scanners prefetch GETs, so GET changes
    nothing); POST unsubscribes, whether from that button or from a mail client's one-click
    ``List-Unsubscribe-Post``. Mail clients post without a CSRF token, and the signed
    single-use token is the proof the request is genuine, so the view is CSRF-exempt.
    """
    if request.method == "GET":
        try:
            tokens.unsubscribe_token_data(token)
        except tokens.InvalidToken:
            return render(request, "notifications/unsubscribe.html", {"state": "invalid"},
                          status=400)
        return render(request, "notifications/unsubscribe.html", {"state": "confirm"})
    try:
        services.email_unsubscribe(token=token)
    except tokens.InvalidToken:
        return render(request, "notifications/unsubscribe.html", {"state": "invalid"},
                      status=400)
    return render(request, "notifications/unsubscribe.html", {"state": "done"})


@never_cache
@require_GET
def verify_email(request: HttpRequest) -> HttpResponse:
    """Verify the address the link was sent to. Unlike unsubscribe, GET changes state:
    the token can do nothing but verify, only whoever receives mail at that address (or
    their mail filter, opening links first) has it, and verifying again changes nothing.
    """
    try:
        user = services.email_verify(token=request.GET.get("token", ""))
    except tokens.InvalidToken:
        response = render(request, "account/verify_email.html",
                          {"state": "invalid", "language": None}, status=400)
        # Logged here, without the request: Django's own "Bad Request" line carries it,
        # and its text holds the query string, i.e. the token.
        log_response("Bad Request: %s", request.path, response=response)
        return response
    return render(request, "account/verify_email.html",
                  {"state": "verified", "language": recipient_language(user)})
