from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit.receivers import on_operator_action
        from jobs.signals import operator_action

        # jobs imports no app above it: it announces staff actions, and the trail records them.
        operator_action.connect(on_operator_action, dispatch_uid="audit.operator_action")
