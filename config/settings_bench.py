"""Settings of ``manage.py benchjobs`` and of the worker processes it starts.

The development defaults (as with ``DEBUG=true``), but with ``DEBUG`` off as in
production: with it on, Django's debug cursor records and formats every SQL statement,
which costs more than the email itself and would make the benchmark measure that. The
``bench`` app (the command and its no-op actor) is installed here only.
"""

import os

os.environ.setdefault("DEBUG", "true")  # development defaults for unset variables
os.environ["EMAIL_ESP"] = "test"

from config.settings import *  # noqa: E402,F403

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405
