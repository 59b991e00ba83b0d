"""Contractor search (README "Search"): the accent folding and the text search
configurations, the profile's description and search entry with their indexes, the City
table seeded from GeoNames (marketplace/search/cities_ca.csv) and the trade categories.

PostgreSQL's ``unaccent`` contrib extension is not used: ``make run``'s embedded server
(pgserver 0.1.4, PostgreSQL 16.2) ships no contrib extension. ``jobsite_unaccent`` folds
accents with core functions instead (Unicode NFD, then the combining marks removed; œ and
æ spelt out), and text is folded before ``to_tsvector``/``websearch_to_tsquery``, exactly
where the ``unaccent`` dictionary would sit in front of the stemmer.
"""

import csv
from pathlib import Path

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.functions.text
from django.db import migrations, models

CITIES_CSV = Path(__file__).resolve().parents[1] / "search" / "cities_ca.csv"

# ASCII text (the common case) is returned as it is: octet_length = length.
FOLDING_SQL = r"""
CREATE FUNCTION jobsite_unaccent(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN octet_length(value) = length(value) THEN value
    ELSE regexp_replace(replace(replace(replace(replace(normalize(value, NFD),
           'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'), '[\u0300-\u036f]', '', 'g')
  END
$$;
COMMENT ON FUNCTION jobsite_unaccent(text) IS
  'Accents folded: NFD, combining marks removed, oe/ae ligatures spelt out (contractor search).';
CREATE TEXT SEARCH CONFIGURATION jobsite_en (COPY = english);
CREATE TEXT SEARCH CONFIGURATION jobsite_fr (COPY = french);
-- tsvectors joined (||) over rows: a profile's trade categories, each analysed once.
CREATE AGGREGATE jobsite_tsvector_agg(tsvector) (
  SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = '');
"""
FOLDING_REVERSE_SQL = """
DROP AGGREGATE jobsite_tsvector_agg(tsvector);
DROP TEXT SEARCH CONFIGURATION jobsite_fr;
DROP TEXT SEARCH CONFIGURATION jobsite_en;
DROP FUNCTION jobsite_unaccent(text);
"""

# slug, English name, French name, more words (either language) that should find it.
TRADE_CATEGORIES = [
    ("plumbing", "Plumbing", "Plomberie", "plumber plombier pipes tuyauterie drain"),
    ("electrical", "Electrical", "Électricité", "electrician électricien wiring câblage"),
    ("renovation", "Renovation", "Rénovation", "general contractor entrepreneur général "
     "remodeling"),
    ("roofing", "Roofing", "Toiture", "roofer couvreur shingles bardeaux"),
    ("painting", "Painting", "Peinture", "painter peintre"),
    ("carpentry", "Carpentry", "Menuiserie", "carpenter menuisier charpentier woodwork"),
    ("hvac", "Heating and air conditioning", "Chauffage et climatisation",
     "HVAC furnace fournaise heat pump thermopompe"),
    ("landscaping", "Landscaping", "Aménagement paysager", "landscaper paysagiste lawn "
     "pelouse"),
    ("flooring", "Flooring", "Revêtement de sol", "floors planchers tile carrelage hardwood"),
    ("masonry", "Masonry", "Maçonnerie", "mason maçon brick brique stone pierre"),
    ("cleaning", "Cleaning", "Entretien ménager", "cleaner nettoyage ménage"),
    ("moving", "Moving", "Déménagement", "movers déménageur"),
    ("snow-removal", "Snow removal", "Déneigement", "snow plow déneigeur"),
    ("windows-doors", "Windows and doors", "Portes et fenêtres", "installer installation"),
    ("drywall", "Drywall", "Cloisons sèches", "gypse plâtrier plastering"),
    ("excavation", "Excavation", "Excavation", "foundation fondation"),
    ("handyman", "Handyman", "Homme à tout faire", "repairs réparations"),
    ("kitchens", "Kitchens", "Cuisines", "cabinets armoires"),
    ("bathrooms", "Bathrooms", "Salles de bain", "shower douche"),
    ("pest-control", "Pest control", "Extermination", "exterminator exterminateur"),
]


def seed(apps, schema_editor):
    """Insert the cities and categories above. Idempotent (unique GeoNames ids and slugs):
    the tests re-run it after a transactional test's flush has emptied the tables."""
    City = apps.get_model("marketplace", "City")
    TradeCategory = apps.get_model("marketplace", "TradeCategory")
    with CITIES_CSV.open(newline="", encoding="utf-8") as rows:
        City.objects.bulk_create([
            City(geonames_id=int(row["geonameid"]), name=row["name"], province=row["province"],
                 latitude=float(row["latitude"]), longitude=float(row["longitude"]),
                 population=int(row["population"]))
            for row in csv.DictReader(rows)], ignore_conflicts=True)
    TradeCategory.objects.bulk_create([
        TradeCategory(slug=slug, name_en=en, name_fr=fr, search_terms=terms)
        for slug, en, fr, terms in TRADE_CATEGORIES], ignore_conflicts=True)


def unseed(apps, schema_editor):
    apps.get_model("marketplace", "City").objects.all().delete()
    apps.get_model("marketplace", "TradeCategory").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0004_ratings_badges_visibility'),
    ]

    operations = [
        migrations.RunSQL(FOLDING_SQL, FOLDING_REVERSE_SQL),
        migrations.CreateModel(
            name='City',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('province', models.CharField(choices=[('AB', 'Alberta'), ('BC', 'British Columbia'), ('MB', 'Manitoba'), ('NB', 'New Brunswick'), ('NL', 'Newfoundland and Labrador'), ('NS', 'Nova Scotia'), ('NT', 'Northwest Territories'), ('NU', 'Nunavut'), ('ON', 'Ontario'), ('PE', 'Prince Edward Island'), ('QC', 'Quebec'), ('SK', 'Saskatchewan'), ('YT', 'Yukon')], max_length=2)),
                ('latitude', models.FloatField()),
                ('longitude', models.FloatField()),
                ('population', models.PositiveIntegerField(default=0)),
                ('geonames_id', models.PositiveIntegerField(blank=True, null=True, unique=True)),
            ],
            options={
                'verbose_name_plural': 'cities',
                'ordering': ['-population', 'name'],
            },
        ),
        migrations.CreateModel(
            name='TradeCategory',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(unique=True)),
                ('name_en', models.CharField(max_length=100)),
                ('name_fr', models.CharField(max_length=100)),
                ('search_terms', models.CharField(blank=True, max_length=300)),
                ('contractor_count', models.PositiveIntegerField(default=0, editable=False)),
                ('recent_order_count', models.PositiveIntegerField(default=0, editable=False)),
                ('counted_at', models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                'verbose_name_plural': 'trade categories',
                'ordering': ['-recent_order_count', '-contractor_count', 'slug'],
            },
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='description',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='search_indexed_at',
            field=models.DateTimeField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='search_latitude',
            field=models.FloatField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='search_longitude',
            field=models.FloatField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='search_source',
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='contractorprofile',
            name='search_vector',
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='contractorprofile',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='profile_search_vector'),
        ),
        migrations.AddIndex(
            model_name='contractorprofile',
            index=models.Index(fields=['search_latitude', 'search_longitude'], name='profile_search_location'),
        ),
        migrations.AddIndex(
            model_name='contractorprofile',
            index=django.contrib.postgres.indexes.GinIndex(fields=['trade_categories'], name='profile_trade_categories', opclasses=['jsonb_path_ops']),
        ),
        migrations.AddIndex(
            model_name='contractorprofile',
            index=django.contrib.postgres.indexes.GinIndex(condition=models.Q(('badges__contains', ['pro']), ('is_visible', True)), fields=['search_vector'], name='profile_search_vector_pro'),
        ),
        migrations.AddIndex(
            model_name='contractorprofile',
            index=models.Index(condition=models.Q(('badges__contains', ['pro']), ('is_visible', True)), fields=['search_latitude', 'search_longitude'], name='profile_search_location_pro'),
        ),
        migrations.AddIndex(
            model_name='contractorprofile',
            index=django.contrib.postgres.indexes.GinIndex(condition=models.Q(('badges__contains', ['pro']), ('is_visible', True)), fields=['trade_categories'], name='profile_trade_categories_pro', opclasses=['jsonb_path_ops']),
        ),
        migrations.AddIndex(
            model_name='city',
            index=models.Index(django.db.models.functions.text.Lower(models.Func(models.F('name'), function='jobsite_unaccent', output_field=models.TextField())), models.F('province'), name='city_folded_name'),
        ),
        migrations.AddConstraint(
            model_name='city',
            constraint=models.CheckConstraint(condition=models.Q(('latitude__gte', -90), ('latitude__lte', 90), ('longitude__gte', -180), ('longitude__lte', 180)), name='city_coordinates_in_range'),
        ),
        migrations.RunPython(seed, unseed),
    ]
