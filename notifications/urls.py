from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("email/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("account/verify-email/", views.verify_email, name="verify-email"),
]
