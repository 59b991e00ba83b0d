from django.urls import path

from payments.views import account_subscription, order_payment_start, order_receipt
from payments.webhooks import stripe_webhook

urlpatterns = [
    path("webhooks/stripe/", stripe_webhook, name="stripe-webhook"),
    path("orders/<int:order_id>/pay", order_payment_start, name="order-payment-start"),
    path("orders/<int:order_id>/receipt", order_receipt, name="order-receipt"),
    path("account/subscription", account_subscription, name="account-subscription"),
]
