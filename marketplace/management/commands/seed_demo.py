"""Seed demo marketplace data so every background job has real work.

Idempotent: every row has a deterministic natural key and is created only when missing,
so running it twice leaves the same data.
"""

import hashlib
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditLog
from audit.services import resource_type_of
from marketplace.models import (
    ChatMessage,
    ContractorProfile,
    Order,
    OrderStatus,
    RefreshToken,
    Review,
    ReviewSubject,
    User,
    UserSession,
)
from marketplace.search.index import search_profile_index

DEMO_DOMAIN = "demo.jobsite.local"
DEMO_ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
THREAD_NAMESPACE = uuid.UUID("5a1c1a56-0000-4000-8000-00000000a11c")

CLIENTS = [
    ("client1", "Olivia", "Tremblay", "en", "ON", "America/Toronto"),
    ("client2", "Gabriel", "Roy", "fr", "QC", "America/Toronto"),
    ("client3", "Emma", "Wilson", "en", "BC", "America/Vancouver"),
    ("client4", "Léa", "Gagnon", "fr", "QC", "America/Toronto"),
    ("client5", "Noah", "Singh", "en", "AB", "America/Edmonton"),
    ("client6", "Chloé", "Bouchard", "fr", "NB", "America/Moncton"),
]
CONTRACTORS = [
    ("pro1", "Liam", "MacDonald", "en", "ON", "Toronto", ["plumbing"], "43.6532", "-79.3832"),
    ("pro2", "Félix", "Côté", "fr", "QC", "Montréal", ["electrical", "renovation"],
     "45.5019", "-73.5674"),
    ("pro3", "Ava", "Chen", "en", "BC", "Vancouver", ["roofing"], "49.2827", "-123.1207"),
    ("pro4", "Zoé", "Pelletier", "fr", "QC", "Québec", ["painting"], "46.8139", "-71.2080"),
]
# What each demo contractor says about their work (searched: README "Search").
DESCRIPTIONS = {
    "pro1": "Licensed plumber: leaks, water heaters and bathroom renovations in the GTA.",
    "pro2": "Électricien résidentiel et commercial : panneaux, câblage et bornes de recharge.",
    "pro3": "Roof repairs and new shingles across Metro Vancouver; free estimates.",
    "pro4": "Peintre en bâtiment : intérieur, extérieur et teinture de patios à Québec.",
}
# Sales tax by province in basis points (HST/GST+PST/QST), enough for demo orders.
TAX_BPS = {"ON": 1300, "QC": 1497, "BC": 1200, "AB": 500, "NB": 1500}
STATUSES = [OrderStatus.COMPLETED, OrderStatus.IN_PROGRESS, OrderStatus.OPEN,
            OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.ACCEPTED]
ACCEPTED_STATUSES = (OrderStatus.ACCEPTED, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED)
# Chat ages in days: some past the 90-day retention, some read, some important.
CHAT_AGES = [1, 5, 30, 89, 91, 120, 200, 400]


class Command(BaseCommand):
    help = "Create demo users (EN and FR), contractors, orders, reviews, chats and sessions."

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-password-file",
            help="Create the demo staff account (if missing) with a random password saved "
                 "to this file, and print its login.",
        )

    def handle(self, *args, admin_password_file=None, **options):
        now = timezone.now()
        with transaction.atomic():
            created = self._seed(now)
            # Searchable at once (the nightly reindex would get there by itself).
            for profile_id in ContractorProfile.objects.filter(
                    user__email__endswith=f"@{DEMO_DOMAIN}").values_list("pk", flat=True):
                search_profile_index(profile_id=profile_id)
        summary = ", ".join(f"{count} {what}" for what, count in created.items())
        self.stdout.write(self.style.SUCCESS(f"Demo data ready (new rows): {summary}"))
        if admin_password_file:
            self._demo_admin(Path(admin_password_file))

    def _demo_admin(self, password_file: Path) -> None:
        user = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
        if user is None or not password_file.exists():
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            if user is None:
                User.objects.create_superuser(DEMO_ADMIN_EMAIL, password, first_name="Demo")
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
        password = password_file.read_text().strip()
        if not password:
            raise CommandError(f"{password_file} is empty; delete it to make a new password.")
        self.stdout.write(
            f"Demo staff login: {DEMO_ADMIN_EMAIL} / {password}  (saved in {password_file})"
        )

    def _seed(self, now) -> dict[str, int]:
        counts = dict.fromkeys(
            ["users", "contractors", "orders", "reviews", "chat messages", "sessions",
             "audit entries"], 0
        )

        def user(key, first, last, lang, province, tz, contractor=False):
            obj, made = User.objects.get_or_create(
                email=f"{key}@{DEMO_DOMAIN}",
                defaults=dict(first_name=first, last_name=last, preferred_language=lang,
                              province=province, time_zone=tz, is_contractor=contractor,
                              last_activity_at=now - timedelta(days=3)),
            )
            if made:
                obj.set_unusable_password()
                obj.save(update_fields=["password"])
                counts["users"] += 1
            return obj

        clients = [user(*row) for row in CLIENTS]
        # One long-inactive client for the inactive-account workflow.
        dormant = user("dormant", "Jacob", "Martin", "en", "ON", "America/Toronto")
        User.objects.filter(pk=dormant.pk).update(last_activity_at=now - timedelta(days=800))

        pros = []
        for key, first, last, lang, prov, city, trades, lat, lng in CONTRACTORS:
            pro = user(key, first, last, lang, prov, "America/Toronto", contractor=True)
            _, made = ContractorProfile.objects.get_or_create(
                user=pro,
                defaults=dict(business_name=f"{first} {last} {trades[0].title()}", city=city,
                              province=prov, trade_categories=trades, latitude=lat,
                              longitude=lng, description=DESCRIPTIONS[key]),
            )
            counts["contractors"] += made
            pros.append(pro)

        for i, client in enumerate(clients):
            for j in range(3):
                n = i * 3 + j
                pro = pros[n % len(pros)]
                status = STATUSES[n % len(STATUSES)]
                subtotal = 15_000 + 2_500 * n
                tax = subtotal * TAX_BPS.get(client.province, 1300) // 10_000
                title = f"Demo job {n + 1}"
                created = now - timedelta(days=10 + 37 * n)
                order, made = Order.objects.get_or_create(
                    client=client, title=title,
                    defaults=dict(
                        contractor=None if status == OrderStatus.OPEN else pro,
                        status=status, subtotal_cents=subtotal, tax_cents=tax,
                        total_cents=subtotal + tax, province=client.province,
                        created_at=created,
                        accepted_at=(created + timedelta(hours=1 + n % 4)
                                     if status in ACCEPTED_STATUSES else None),
                        completed_at=(now - timedelta(days=5 + 37 * n)
                                      if status == OrderStatus.COMPLETED else None),
                    ),
                )
                counts["orders"] += made
                if order.status == OrderStatus.COMPLETED and order.contractor_id:
                    _, made = Review.objects.get_or_create(
                        order=order, author=client,
                        defaults=dict(subject_id=order.contractor_id, rating=3 + n % 3,
                                      text="Great work, on time." if n % 2 else "Bon travail."),
                    )
                    counts["reviews"] += made
                    # and the contractor reviews the client (ratings both ways)
                    _, made = Review.objects.get_or_create(
                        order=order, author_id=order.contractor_id,
                        defaults=dict(subject=client, subject_role=ReviewSubject.CLIENT,
                                      rating=4 + n % 2, text="Clear brief, paid on time."),
                    )
                    counts["reviews"] += made

                thread = uuid.uuid5(THREAD_NAMESPACE, f"{client.email}:{title}")
                for k, age in enumerate(CHAT_AGES):
                    sender, recipient = (client, pro) if k % 2 == 0 else (pro, client)
                    created_at = (now - timedelta(days=age)).replace(
                        hour=12, minute=0, second=0, microsecond=0
                    )
                    _, made = ChatMessage.objects.get_or_create(
                        thread_id=thread, sender=sender, created_at=created_at,
                        defaults=dict(recipient=recipient,
                                      body=f"Message {k + 1} about {title}.",
                                      is_read=(k % 3 != 0), is_important=(k == 5)),
                    )
                    counts["chat messages"] += made

        for i, client in enumerate(clients + [dormant]):
            for age, active in ((1, True), (10, False), (30, True)):
                key_hash = hashlib.sha256(f"demo-session:{client.email}:{age}".encode()).hexdigest()
                session, made = UserSession.objects.get_or_create(
                    session_key_hash=key_hash,
                    defaults=dict(user=client, device="ios" if i % 2 else "android",
                                  created_at=now - timedelta(days=age + 1),
                                  last_activity_at=now - timedelta(days=age),
                                  expires_at=now + timedelta(days=7 - age),
                                  is_active=active),
                )
                counts["sessions"] += made
                RefreshToken.objects.get_or_create(
                    token_hash=hashlib.sha256(key_hash.encode()).hexdigest(),
                    defaults=dict(user=client, session=session,
                                  created_at=session.created_at,
                                  last_activity_at=session.last_activity_at,
                                  expires_at=session.expires_at, revoked=not active,
                                  is_active=active),
                )

        for age in (10, 200, 380, 500):
            _, made = AuditLog.objects.get_or_create(
                action="demo.seeded", resource_type=resource_type_of(User),
                resource_id=str(age),
                defaults=dict(created_at=now - timedelta(days=age), is_critical=age == 500,
                              metadata={"age_days": age}),
            )
            counts["audit entries"] += made
        return counts
