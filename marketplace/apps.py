from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from jobs.operations.security_audit import security_finding_source
        from marketplace import checks  # noqa: F401  (registers the system checks)
        from marketplace.security import failed_login_findings, on_user_login_failed

        # The app that owns users audits their failed logins and reports spikes of them.
        user_login_failed.connect(on_user_login_failed,
                                  dispatch_uid="marketplace.login_failed")
        security_finding_source(failed_login_findings)
