# Ratings, badges and visibility (marketplace.ratings): reviews carry whom they rate
# (reviews written before this were all by clients of contractors, unless an order's
# contractor wrote one: those rate the client), Bayesian averages, client ratings, the runs
# of the full recalculation, why a profile is hidden, and when an order was accepted. The
# FK indexes of Review.subject and Order.contractor give way to covering indexes that lead
# with the same column.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0003_auditlog_moved_to_audit'),
    ]

    operations = [
        migrations.CreateModel(
            name='ClientRating',
            fields=[
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='client_rating', serialize=False, to=settings.AUTH_USER_MODEL)),
                ('rating_count', models.PositiveIntegerField(default=0)),
                ('rating_average', models.DecimalField(decimal_places=2, default=0, max_digits=3)),
                ('rating_bayesian', models.DecimalField(decimal_places=4, default=0, max_digits=5)),
                ('rating_updated_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name='RatingRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('running', 'Running'), ('done', 'Done'), ('abandoned', 'Abandoned (a newer run started)')], default='running', max_length=10)),
                ('phase', models.CharField(choices=[('contractors', 'Contractor profiles'), ('clients', 'Client ratings')], default='contractors', max_length=12)),
                ('last_id', models.BigIntegerField(default=0, help_text='Resumes after this id (profile id or user id, by phase).')),
                ('confidence', models.DecimalField(decimal_places=2, help_text='C of the Bayesian average in this run.', max_digits=8)),
                ('contractor_prior_mean', models.DecimalField(decimal_places=4, max_digits=5)),
                ('contractor_reviews', models.PositiveBigIntegerField(default=0)),
                ('client_prior_mean', models.DecimalField(decimal_places=4, max_digits=5)),
                ('client_reviews', models.PositiveBigIntegerField(default=0)),
                ('counts', models.JSONField(blank=True, default=dict)),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['-started_at'],
            },
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='hidden_reason',
            field=models.CharField(blank=True, choices=[('account_inactive', 'Account deactivated or deleted'), ('no_trade_category', 'Incomplete: no trade category'), ('no_city', 'Incomplete: no city'), ('no_province', 'Incomplete: no province'), ('low_rated', 'Persistently low rated')], help_text='Why the profile is hidden from search.', max_length=30),
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='rating_bayesian',
            field=models.DecimalField(decimal_places=4, default=0, help_text='Bayesian average (ranking).', max_digits=5),
        ),
        migrations.AddField(
            model_name='order',
            name='accepted_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='review',
            name='edited_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='review',
            name='subject_role',
            field=models.CharField(choices=[('contractor', 'Contractor (by the client)'), ('client', 'Client (by the contractor)')], default='contractor', max_length=10),
        ),
        migrations.RunSQL(
            """UPDATE marketplace_review r SET subject_role = 'client'
               FROM marketplace_order o
               WHERE o.id = r.order_id AND r.author_id = o.contractor_id
                 AND r.subject_id = o.client_id""",
            reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='contractorprofile',
            name='rating_average',
            field=models.DecimalField(decimal_places=2, default=0, help_text='Plain average of the reviews.', max_digits=3),
        ),
        migrations.AlterField(
            model_name='contractorprofile',
            name='rating_updated_at',
            field=models.DateTimeField(blank=True, help_text='When the rating figures, badges or visibility last changed.', null=True),
        ),
        migrations.AlterField(
            model_name='order',
            name='contractor',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='orders_taken', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='review',
            name='subject',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='reviews_received', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['contractor', 'accepted_at'], include=('created_at', 'status'), name='order_contractor_accepted'),
        ),
        migrations.AddIndex(
            model_name='review',
            index=models.Index(fields=['subject', 'subject_role'], include=('rating',), name='review_subject_role_rating'),
        ),
    ]
