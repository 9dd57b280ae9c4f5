"""lm-eval's command line with this package's PEFT methods registered:

    python -m idlora.lm_eval --model hf --model_args pretrained=BASE,peft=ADAPTER_DIR --tasks gsm8k ...

takes lm-eval's own arguments unchanged. ``peft=`` may also name a training run's output directory (the one that
holds ``adapter/``). Plain ``python -m lm_eval`` loads these adapters too where ``idlora`` is installed (its
``idlora_autoload.pth`` registers them when lm-eval imports PEFT); this entry point imports ``idlora`` itself, so it
works also where it is only on ``PYTHONPATH`` or with ``IDLORA_NO_AUTOLOAD=1`` (where plain lm-eval stops at PEFT's
``KeyError: 'IDLORA'``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .results import adapter_run


def resolve_peft_arg(argv: list[str]) -> list[str]:
    """``peft=RUN_DIR`` -> ``peft=RUN_DIR/adapter`` where RUN_DIR holds no adapter but is a run's directory whose
    adapter is saved (``results.adapter_run``)."""

    def fix(match: re.Match) -> str:
        path, run = Path(match.group(2)), adapter_run(match.group(2))
        if not (path / run.weights_marker.name).exists() and run.weights_marker.exists():
            path = run.weights
        return match.group(1) + str(path)

    return [re.sub(r"(\bpeft=)([^,]+)", fix, arg) for arg in argv]


def main(argv: list[str] | None = None) -> None:
    import idlora  # noqa: F401  (registers IDLORA, HYDRALORA, MOELORA and LORI with PEFT)
    from lm_eval.__main__ import cli_evaluate

    sys.argv = [sys.argv[0], *resolve_peft_arg(list(sys.argv[1:] if argv is None else argv))]
    cli_evaluate()


if __name__ == "__main__":
    main()
