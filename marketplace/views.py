"""Marketplace endpoints the background jobs are fed from."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from jobs.http import BadJson, bad_request, json_object, rate_limited
from marketplace.models import Order
from marketplace.services import review_create

MAX_REVIEW_TEXT = 5000


@login_required
@require_POST
@rate_limited("review-create")
def order_review_create(request: HttpRequest, order_id: int) -> JsonResponse:
    """POST {"rating": 1-5, "text": "..."}: the client reviews a completed order."""
    order = get_object_or_404(Order, pk=order_id)
    try:
        payload = json_object(request)
    except BadJson as exc:
        return bad_request(f"Send a JSON object: {exc}.")
    rating, text = payload.get("rating"), payload.get("text", "")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        return bad_request("'rating' must be a whole number from 1 to 5.")
    if not isinstance(text, str) or len(text) > MAX_REVIEW_TEXT:
        return bad_request(f"'text' must be text of at most {MAX_REVIEW_TEXT} characters.")
    try:
        review = review_create(order=order, author=request.user, rating=rating, text=text)
    except PermissionDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except ValidationError as exc:
        return bad_request(" ".join(exc.messages))
    return JsonResponse({"id": review.pk}, status=201)
