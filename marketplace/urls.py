from django.urls import path

from marketplace import views

urlpatterns = [
    path("orders/<int:order_id>/review", views.order_review_create, name="order-review-create"),
    path("reviews/<int:review_id>", views.review_change, name="review-change"),
]
