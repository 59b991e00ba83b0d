"""The one-click unsubscribe endpoint (RFC 8058).

GET shows a confirmation button (link scanners prefetch GETs, so GET changes nothing);
POST unsubscribes, whether from that button or from a mail client's one-click
``List-Unsubscribe-Post``. Mail clients post without a CSRF token, and the signed
single-use token is the proof the request is genuine, so the view is CSRF-exempt.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications import services, tokens


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
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
