"""Reports, built from results files and configs only: the paper's tables (``tables``), figures (``figures``, and
``router``, ``effective_rank`` from their analyses' JSON), the claims (``claims``, ``paired``, ``preregistered``) and
the real-data pilot's summary (``pilot``). Nothing here trains, evaluates, launches or benchmarks (pyproject.toml's
import contracts)."""
