"""Admin of the jobs app. Each feature registers its models in its own module."""

import jobs.scheduling.admin  # noqa: F401
