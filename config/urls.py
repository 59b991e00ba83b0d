from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("marketplace.urls")),
    # anymail's tracking webhooks (basic auth: ANYMAIL_WEBHOOK_SECRET), e.g.
    # /webhooks/anymail/postmark/tracking/, .../sendgrid/tracking/, .../amazon_ses/tracking/
    path("webhooks/anymail/", include("notifications.webhooks")),
    path("", include("notifications.urls")),
]
