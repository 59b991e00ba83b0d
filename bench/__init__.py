"""The benchmarks behind ``manage.py benchjobs``, ``benchretention`` and
``benchmarketplace`` (installed by ``config.settings_bench`` only).

- ``tasks``: the no-op actor run through the full Jobsite middleware stack (declared on
  the ``emails`` queue, so the production ``high`` worker group runs it).
- ``bare``: the same no-op on a bare Dramatiq broker (no middleware), started with the
  plain ``dramatiq`` CLI: the baseline that Jobsite's overhead is measured against.
- ``runner``: starts real worker subprocesses, enqueues workloads through production's
  services, waits, and computes the figures.
- ``job_stats_middleware``: a micro-benchmark of the statistics middleware's hooks.
- ``retention``: the chat-message retention cleanup on a real batch worker beside a live
  writer (``manage.py benchretention``).
- ``marketplace``: 100,000 contractor profiles with 1,000,000 reviews, the nightly jobs
  over them on a real batch worker (a list of phases) and search latency
  (``manage.py benchmarketplace``).

A new workload plugs in by adding a :class:`runner.Workload` to ``runner.WORKLOADS``.
"""
