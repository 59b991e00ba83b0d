from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # Journal entries from payment state changes (the intents module's hook lists).
        from payments.services.accounting import accounting_hooks_install

        accounting_hooks_install()

        from notifications.extensions import email_extension_register
        from payments.services import receipts

        # The confirmation email's receipt: its rows in the body, its PDF attached, both
        # read at send time from the receipt_id in the email's context.
        email_extension_register("payment_confirmation", values=receipts.receipt_email_values,
                                 attachments=receipts.receipt_email_attachments,
                                 sample_values=receipts.RECEIPT_SAMPLE_VALUES)
