"""Cluster and cache the PMRC rows of a run's model, in one process, before a distributed run reads them.

    python scripts/pmrc.py experiment=multitask_llama3 scale=paper        # the run's own overrides
    make pmrc MODEL=llama3_8b SCALE=paper                                  # the default ID-LoRA setting of a model

Takes the same Hydra overrides as scripts/train.py. Clusters on the GPU when there is one (the torch backend),
else on every CPU core; does nothing for a method without PMRC or when every matrix is cached already. The Slurm
job and `make tableN SCALE=paper` run it first, so no rank of a training run waits on a barrier while rank 0
clusters an 8B model.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from idlora.cli import main_guard
from idlora.config import CONFIG_DIR, resolve


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
@main_guard
def main(cfg: DictConfig) -> None:
    from idlora.training.prepare import precompute_pmrc

    precompute_pmrc(resolve(cfg, HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
