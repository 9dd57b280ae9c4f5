"""Training, one job per module: ``pipeline`` (train, then score: what scripts/train.py runs), ``setup`` (validation,
data and model before the first step), ``distributed`` (processes), ``optim`` (optimizer and lr schedule), ``loop``
(the steps), ``checkpoint`` (what a checkpoint holds and its crash-safe protocol), ``record`` (the results file),
``recipes`` (what a method needs beyond apply-then-train), ``retrain`` (a rerun never destroys a complete result),
``prepare`` (the PMRC step before a distributed run)."""
