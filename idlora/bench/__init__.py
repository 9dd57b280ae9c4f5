"""Measurements beyond training: efficiency (``efficiency``), PMRC time and its paper-scale cost (``pmrc``,
``pmrc_cost``), the paper-scale memory plan (``memory_plan``), the CPU (``cpu``), B's input scale (``base_scale``)
and the GPU check (``gpu_check``), all timing by one paired-trial rule (``trials``)."""
