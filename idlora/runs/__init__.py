"""Runs: one run's spec and its local, Accelerate or Slurm launch (``launch``); wheels for an offline GPU machine (``wheels``)."""
