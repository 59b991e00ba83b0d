from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # Journal entries from payment state changes (the intents module's hook lists).
        from payments.services.accounting import accounting_hooks_install

        accounting_hooks_install()
