"""Marketplace endpoints the background jobs are fed from."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.http import BadJson, bad_request, json_object, rate_limited
from marketplace.models import Order, Review
from marketplace.reviews import review_create, review_remove, review_update
from marketplace.search.selectors import (
    SearchInputError,
    search_category_suggestions,
    search_contractors,
)

MAX_REVIEW_TEXT = 5000


def _review_payload(request: HttpRequest, *, partial: bool) -> tuple[int | None, str | None]:
    """(rating, text) of a review's JSON body; with ``partial`` either may be absent
    (None). Raises ValidationError with what is wrong."""
    try:
        payload = json_object(request)
    except BadJson as exc:
        raise ValidationError(f"Send a JSON object: {exc}.") from exc
    rating, text = payload.get("rating"), payload.get("text", None if partial else "")
    if not (partial and rating is None) and (
            isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
        raise ValidationError("'rating' must be a whole number from 1 to 5.")
    if not (partial and text is None) and (
            not isinstance(text, str) or len(text) > MAX_REVIEW_TEXT):
        raise ValidationError(f"'text' must be text of at most {MAX_REVIEW_TEXT} characters.")
    return rating, text


def _refused(exc: PermissionDenied | ValidationError) -> JsonResponse:
    """A refusal as the answer: 403, or 400 for bad input."""
    if isinstance(exc, PermissionDenied):
        return JsonResponse({"error": str(exc)}, status=403)
    return bad_request(" ".join(exc.messages))


@login_required
@require_POST
@rate_limited("review-create")
def order_review_create(request: HttpRequest, order_id: int) -> HttpResponse:
    """POST {"rating": 1-5, "text": "..."}: the client reviews the contractor of a completed
    order, or its contractor reviews the client."""
    order = get_object_or_404(Order, pk=order_id)
    try:
        rating, text = _review_payload(request, partial=False)
        review = review_create(order=order, author=request.user, rating=rating, text=text)
    except (PermissionDenied, ValidationError) as exc:
        return _refused(exc)
    return JsonResponse({"id": review.pk}, status=201)


@login_required
@require_http_methods(["PATCH", "DELETE"])
@rate_limited("review-change")
def review_change(request: HttpRequest, review_id: int) -> HttpResponse:
    """PATCH {"rating"?: 1-5, "text"?: "..."}: the author edits their review. DELETE: the
    author (or staff) removes it."""
    review = get_object_or_404(Review, pk=review_id)
    try:
        if request.method == "DELETE":
            review_remove(review=review, by=request.user)
            return HttpResponse(status=204)
        rating, text = _review_payload(request, partial=True)
        review = review_update(review=review, author=request.user, rating=rating, text=text)
    except (PermissionDenied, ValidationError) as exc:
        return _refused(exc)
    except Review.DoesNotExist:
        return JsonResponse({"error": "The review was removed."}, status=404)
    return JsonResponse({"id": review.pk, "rating": review.rating})


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
        "rating": str(hit.rating_bayesian), "rating_count": hit.rating_count,
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
