"""Give the demo users (``seed_demo``) a push device each, so ``make run`` can show push:
the console provider prints every push the ``push`` worker sends. Idempotent."""

import hashlib

from django.core.management.base import BaseCommand

from marketplace.management.commands.seed_demo import DEMO_DOMAIN
from marketplace.models import User
from notifications.models import Platform
from notifications.services.devices import device_register
from notifications.services.push_consent import push_preference_update


class Command(BaseCommand):
    help = "Register a demo push device for every demo user; half consent to promotions."

    def handle(self, *args, **options):
        users = (User.objects.filter(email__endswith=f"@{DEMO_DOMAIN}", is_staff=False)
                 .order_by("email"))
        platforms = Platform.values
        for n, user in enumerate(users):
            digest = hashlib.sha256(user.email.encode()).hexdigest()[:24]
            device_register(user=user, platform=platforms[n % len(platforms)],
                            subscription_id=f"demo-{digest}")
            push_preference_update(user=user, via="seed_demo_push",
                                   promotional_consent=n % 2 == 0)
        self.stdout.write(self.style.SUCCESS(
            f"Demo push devices ready: {len(users)} users, every other one consenting to "
            "promotions."))
