from django.urls import path

from marketplace import views

urlpatterns = [
    path("orders/<int:order_id>/review", views.order_review_create, name="order-review-create"),
    path("reviews/<int:review_id>", views.review_change, name="review-change"),
    path("search/contractors", views.contractor_search, name="contractor-search"),
    path("search/categories", views.category_suggestions, name="category-suggestions"),
]
