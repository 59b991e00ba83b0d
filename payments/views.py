"""Payment endpoints users call (the webhook is payments/webhooks.py)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from jobs.http import bad_request, rate_limited
from marketplace.models import Order
from payments.services.checkout import payment_start
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
