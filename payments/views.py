"""Payment endpoints users call (the webhook is payments/webhooks.py)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from jobs.http import bad_request, rate_limited
from jobs.storage import ObjectMissing, object_store
from marketplace.models import Order
from payments.models import Receipt
from payments.services.checkout import payment_start
from payments.services.receipts import RECEIPT_STORE
from payments.services.subscriptions import subscription_portal_url
from payments.stripe_api import StripeRefused, StripeUnavailable


@login_required
@require_POST
@rate_limited("payment-start")
def order_payment_start(request: HttpRequest, order_id: int) -> JsonResponse:
    """POST: the order's client starts paying; answers the PaymentIntent's client secret
    for Stripe.js, and the amounts."""
    get_object_or_404(Order, pk=order_id)
    try:
        started = payment_start(order_id=order_id, user=request.user)
    except PermissionDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except ValidationError as exc:
        return bad_request(" ".join(exc.messages))
    except StripeUnavailable:
        return JsonResponse({"error": "Payments are unavailable; try again shortly."},
                            status=503, headers={"Retry-After": "30"})
    except StripeRefused:
        return JsonResponse({"error": "The payment could not be started."}, status=502)
    payment = started.payment
    return JsonResponse({"payment_id": payment.pk, "client_secret": started.client_secret,
                         "amount_cents": payment.amount_cents,
                         "tax_cents": payment.tax_cents, "currency": payment.currency},
                        status=201)


@login_required
@require_GET
def order_receipt(request: HttpRequest, order_id: int) -> HttpResponse:
    """GET: the PDF receipt of the order's payment (the link in the confirmation email),
    for the order's client or staff; 404 until it is stored."""
    order = get_object_or_404(Order, pk=order_id)
    if order.client_id != request.user.pk and not request.user.is_staff:
        raise Http404("No receipt here.")  # not 403: an order's existence is not told
    receipt = (Receipt.objects.filter(payment__order=order).exclude(pdf_key="")
               .order_by("-number").first())
    if receipt is None:
        raise Http404("The receipt is not ready yet.")
    try:
        content = object_store(RECEIPT_STORE).get(receipt.pdf_key)
    except ObjectMissing:
        raise Http404("The receipt is not ready yet.") from None
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{receipt.label}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
@rate_limited("billing-portal")
def account_subscription(request: HttpRequest) -> HttpResponse:
    """GET: the contractor's subscription (the link in the subscription emails): a
    redirect to Stripe's customer portal, where the card is updated, the plan renewed or
    cancelled; the changes come back to us as webhooks."""
    try:
        url = subscription_portal_url(user_id=request.user.pk,
                                      return_url=f"{settings.SITE_URL}/")
    except StripeUnavailable:
        return HttpResponse("Subscriptions are unavailable right now; try again shortly.",
                            status=503, headers={"Retry-After": "30"},
                            content_type="text/plain; charset=utf-8")
    except StripeRefused:
        return HttpResponse("Your subscription cannot be opened; contact support.",
                            status=502, content_type="text/plain; charset=utf-8")
    if url is None:
        raise Http404("You have no subscription.")
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"
    return response
