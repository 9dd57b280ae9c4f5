"""Train one method on one paper experiment, then evaluate it (once, on rank 0 when distributed).

    python scripts/train.py experiment=multitask_llama3                  # offline CPU, scale=mini
    python scripts/train.py experiment=gsm8k_llama3 scale=paper method=lora
    accelerate launch --config_file configs/accelerate/zero2.yaml scripts/train.py experiment=... scale=paper \
        train.resume=true
    python scripts/train.py experiment=multitask_llama3 scale=paper --cfg job     # print the config

Logic lives in idlora.training.pipeline (train, then score; the loop itself in idlora.training.loop) and
idlora.eval.evaluate (benchmarks); this file only wires Hydra to them.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from idlora.cli import main_guard
from idlora.config import CONFIG_DIR, resolve


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
@main_guard
def main(cfg: DictConfig) -> None:
    from idlora.training.pipeline import train_and_evaluate

    train_and_evaluate(resolve(cfg, HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
