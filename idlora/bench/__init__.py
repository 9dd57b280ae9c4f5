"""Measurements beyond training: efficiency (``efficiency``), PMRC time and its paper-scale cost (``pmrc``, ``pmrc_cost``),
the paper-scale memory plan (``memory_plan``) and the GPU check (``gpu_check``)."""
