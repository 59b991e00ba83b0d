"""Contractor search (README "Search"): PostgreSQL full-text search in English and French
with accents folded, "near this city", trade categories and their popularity.

- ``index``: writes: the search entry of one profile (debounced after a change) or of all
  of them in id chunks (nightly), the categories' popularity.
- ``selectors``: reads: :func:`selectors.search_contractors`, category suggestions, cities.
- ``backends``: the boundary to the engine that answers (``SEARCH_BACKEND``; PostgreSQL).
"""
