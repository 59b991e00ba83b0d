from django.contrib import admin
from django.urls import include, path

from jobs.monitoring.dashboard import queue_dashboard

urlpatterns = [
    # Before admin/ so the admin's catch-all does not claim it; admin_view = staff login.
    path("admin/jobs/dashboard/", admin.site.admin_view(queue_dashboard),
         name="jobs-queue-dashboard"),
    path("admin/", admin.site.urls),
    path("", include("jobs.urls")),
    path("", include("marketplace.urls")),
    # anymail's tracking webhooks (basic auth: ANYMAIL_WEBHOOK_SECRET), e.g.
    # /webhooks/anymail/postmark/tracking/, .../sendgrid/tracking/, .../amazon_ses/tracking/
    path("webhooks/anymail/", include("notifications.webhooks")),
    path("", include("notifications.urls")),
    path("", include("payments.urls")),
]
