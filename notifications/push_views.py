"""The app's push endpoints: register and remove the signed-in user's devices."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from jobs.http import BadJson, bad_request, json_object, rate_limited
from notifications.services.devices import InvalidDevice, device_register, device_remove


def _unauthenticated() -> JsonResponse:
    return JsonResponse({"error": "authentication required"}, status=401)


@require_http_methods(["POST"])
@rate_limited("device-register")
def devices(request: HttpRequest) -> JsonResponse:
    """POST {"platform": "ios|android|web", "subscription_id": "<OneSignal id>"}."""
    if not request.user.is_authenticated:
        return _unauthenticated()
    try:
        payload = json_object(request)
        device = device_register(user=request.user, platform=payload.get("platform"),
                                 subscription_id=payload.get("subscription_id"))
    except (BadJson, InvalidDevice) as exc:
        return bad_request(str(exc))
    return JsonResponse({"id": device.pk, "platform": device.platform}, status=201)


@require_http_methods(["DELETE"])
def device(request: HttpRequest, device_id: int) -> HttpResponse:
    if not request.user.is_authenticated:
        return _unauthenticated()
    if not device_remove(user=request.user, device_id=device_id):
        return JsonResponse({"error": "no such device"}, status=404)
    return HttpResponse(status=204)
