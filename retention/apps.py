from django.apps import AppConfig


def _on_user_logged_in(sender, request, user, **kwargs) -> None:
    from retention.accounts import deletion_notice_cancel

    deletion_notice_cancel(user_id=user.pk)


class RetentionConfig(AppConfig):
    name = "retention"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from retention import checks  # noqa: F401  (registers retention.E001)

        # Signing in keeps an account: its pending deletion notice ends at once (the
        # monthly run would also see the new last_login and cancel it).
        user_logged_in.connect(_on_user_logged_in, dispatch_uid="retention.logged_in")
