from django.urls import path

from notifications import push_views, views

app_name = "notifications"
urlpatterns = [
    path("push/devices", push_views.devices, name="push-devices"),
    path("push/devices/<int:device_id>", push_views.device, name="push-device"),
    path("email/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("account/verify-email/", views.verify_email, name="verify-email"),
    path("account/reset-password/done/", views.PasswordResetComplete.as_view(),
         name="password-reset-complete"),
    path("account/reset-password/<uidb64>/<token>/", views.PasswordResetConfirm.as_view(),
         name="password-reset-confirm"),
]
