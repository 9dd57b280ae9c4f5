"""Training: the loop and its run record (``loop``), crash-safe checkpoints (``checkpoint``), the PMRC step before a run (``prepare``)."""
