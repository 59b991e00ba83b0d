"""Marketplace endpoints the background jobs are fed from."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from jobs.http import BadJson, bad_request, json_object, rate_limited
from marketplace.models import Order
from marketplace.search.selectors import (
    SearchInputError,
    search_category_suggestions,
    search_contractors,
)
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


def _whole_number(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name, "")
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        raise SearchInputError(f"'{name}' must be a whole number.")
    return int(value)


@require_GET
@rate_limited("search")
def contractor_search(request: HttpRequest) -> JsonResponse:
    """GET ?q=&near=&category=&lang=&limit=&offset=: visible contractors, best first
    (``marketplace.search.selectors.search_contractors``). 400 for an unknown city or
    category or a bad number; any text in ``q`` gets results or none."""
    try:
        hits = search_contractors(
            request.GET.get("q", ""), near=request.GET.get("near") or None,
            category=request.GET.get("category") or None,
            language=request.GET.get("lang") or None,
            limit=_whole_number(request, "limit", 20),
            offset=_whole_number(request, "offset", 0))
    except SearchInputError as exc:
        return bad_request(str(exc))
    return JsonResponse({"results": [{
        "profile_id": hit.profile_id, "business_name": hit.business_name, "city": hit.city,
        "province": hit.province, "trade_categories": hit.trade_categories,
        "rating_average": str(hit.rating_average), "rating_count": hit.rating_count,
        "badges": hit.badges, "distance_km": None if hit.distance_km is None
        else round(hit.distance_km, 1),
    } for hit in hits]})


@require_GET
@rate_limited("search")
def category_suggestions(request: HttpRequest) -> JsonResponse:
    """GET ?q=: trade categories starting with ``q`` (EN or FR), most popular first."""
    language = "fr" if request.GET.get("lang") == "fr" else "en"
    return JsonResponse({"results": [{
        "slug": category.slug,
        "name": category.name_fr if language == "fr" else category.name_en,
        "contractors": category.contractor_count,
    } for category in search_category_suggestions(request.GET.get("q", ""))]})
