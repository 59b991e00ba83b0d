from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from jobs.scheduling.audit import on_user_login_failed

        # Failed logins feed the security audit's spike check (as audit-log rows).
        user_login_failed.connect(on_user_login_failed,
                                  dispatch_uid="jobs.scheduling.login_failed")
