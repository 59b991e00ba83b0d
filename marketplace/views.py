"""Marketplace endpoints the background jobs are fed from."""

import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from marketplace.models import Order
from marketplace.services import review_create


@login_required
@require_POST
def order_review_create(request: HttpRequest, order_id: int) -> JsonResponse:
    """POST {"rating": 1-5, "text": "..."}: the client reviews a completed order."""
    order = get_object_or_404(Order, pk=order_id)
    try:
        payload = json.loads(request.body or b"{}")
        rating = int(payload["rating"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "Send JSON with an integer 'rating'."}, status=400)
    try:
        review = review_create(
            order=order, author=request.user, rating=rating, text=str(payload.get("text", ""))
        )
    except PermissionDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    return JsonResponse({"id": review.pk}, status=201)
