"""Settings of the worker processes ``manage.py benchjobs`` starts.

The development defaults (as with ``DEBUG=true``), but with ``DEBUG`` off as in
production: with it on, Django's debug cursor records and formats every SQL statement,
which costs more than the email itself and would make the benchmark measure that.
"""

import os

os.environ.setdefault("DEBUG", "true")  # development defaults for unset variables
os.environ["EMAIL_ESP"] = "test"

from config.settings import *  # noqa: E402,F403

DEBUG = False
