"""Runs: their local, Accelerate or Slurm launch (``launch``), a table's missing runs launched and the table then built
(``orchestrate``), the real-data pilot (``pilot``), wheels for an offline GPU machine (``wheels``). A run's spec and
the run lists of the tables are ``idlora.experiments``'."""
