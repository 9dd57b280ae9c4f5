"""Reports: the paper's tables (``tables``), figures, significance tests (``stats``), the effective-rank study, and
``orchestrate`` (a table's missing runs launched, then the table built)."""
