"""Every experiment composes at every scale, with the paper's hyperparameters at paper scale."""

import pytest

from idlora.config import compose, group_options
from idlora.errors import ConfigError
from idlora.methods import build_peft_config
from idlora.reports.tables.render import paper_numbers

EXPERIMENTS = group_options("experiment")
TABLE_KEYS = {"gsm8k_llama3": "gsm8k_llama3", "gsm8k_mistral": "gsm8k_mistral", "code_llama3": "codealpaca_llama3",
              "code_mistral": "codealpaca_mistral", "safety_llama3": "saferpaca_llama3",
              "safety_mistral": "saferpaca_mistral", "multitask_llama3": "multitask_llama3",
              "multitask_mistral": "multitask_mistral"}


def test_all_nine_experiments_exist():
    assert set(EXPERIMENTS) == set(TABLE_KEYS) | {"multitask_llama32"}


@pytest.mark.parametrize("scale", ["paper", "mini", "tiny"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_every_method_builds(experiment, scale):
    for method in group_options("method"):
        cfg = compose([f"experiment={experiment}", f"scale={scale}", f"method={method}"])
        assert cfg.experiment == experiment and cfg.scale.name == scale
        build_peft_config(cfg.method)
        assert cfg.run_id == f"{experiment}.{scale}.{method}"
    if scale == "mini":
        assert cfg.model.name == "smollm2_135m" and cfg.data.source == "synthetic"
    if scale == "paper":
        assert cfg.model.name == cfg.paper_model and cfg.data.source == "hub"


@pytest.mark.parametrize("experiment", sorted(TABLE_KEYS))
def test_paper_scale_hyperparameters_are_tables_4_and_5(experiment):
    tables = {**paper_numbers()["table4"]["rows"], **paper_numbers()["table5"]["rows"]}
    expected = tables[TABLE_KEYS[experiment]]
    cfg = compose([f"experiment={experiment}", "scale=paper"])
    got = {"r": cfg.method.r, "alpha": cfg.method.alpha, "lr": cfg.train.lr, "dropout": cfg.method.dropout,
           "optimizer": "AdamW" if cfg.train.optimizer == "adamw" else cfg.train.optimizer,
           "batch_size": cfg.train.batch_size, "warmup_steps": cfg.train.warmup_steps, "epochs": cfg.train.epochs}
    assert got == expected
    assert cfg.method.k == 4
    assert list(cfg.method.target_modules) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                               "down_proj"]


def test_ablation_overrides():
    cfg = compose(["experiment=multitask_llama32", "scale=paper", "method.selection=serial",
                   "method.rank_boosting=false", "method.k=6"])
    peft_cfg = build_peft_config(cfg.method)
    assert (peft_cfg.selection, peft_cfg.rank_boosting, peft_cfg.k, peft_cfg.r, peft_cfg.alpha) == \
        ("serial", False, 6, 128, 256)
    lora = build_peft_config(compose(["experiment=multitask_llama3", "method=lora", "method.r=8"]).method)
    assert (lora.r, lora.lora_alpha) == (8, 16)


@pytest.mark.parametrize("overrides,match", [
    (["experiment=nope"], "unknown experiment 'nope'; valid: code_llama3"),
    (["method=lorax"], "unknown method 'lorax'; valid: base, dora, fft"),
    (["scale=huge"], "unknown scale 'huge'; valid: mini, paper, tiny"),
    (["model=gpt5"], "unknown model 'gpt5'"),
])
def test_unknown_names_list_the_valid_ones(overrides, match):
    with pytest.raises(ConfigError, match=match):
        compose(overrides)


@pytest.mark.parametrize("override,match", [
    ("method.r=abc", "positive integer"),
    ("method.r=-8", "positive integer"),
    ("method.r=7", "r must be even"),
    ("method.k=0", "k .*>= 1"),
    ("method.router=mlp", "unknown router"),
    ("method.rb_parts=3", "rb_parts=3 splits x_i in 3 parts, so r must be divisible by 3; got r=32"),
    ("method.rb_parts=1", "rb_parts=1 .* is Rank Boosting off"),
])
def test_bad_method_values(override, match):
    with pytest.raises(ConfigError, match=match):
        build_peft_config(compose([override]).method)


# A value unlike each method-file value, of the same kind (and valid), to see whether anything reads the key.
_OTHER = {"selection": "serial", "router": "inner", "dropout_position": "rows", "pmrc_backend": "reference",
          "impl": "official"}


def _other(key, value):
    if key in _OTHER:
        return _OTHER[key]
    if isinstance(value, bool):
        return not value
    if value is None:
        return 2
    if isinstance(value, int):
        return 2 * value
    if isinstance(value, float):
        return value / 2
    if isinstance(value, list):
        return value[:-1]
    raise AssertionError(f"no other value for {key}={value!r}")


def _what_it_builds(method_cfg: dict, monkeypatch) -> tuple:
    """Everything a method config sets: its PEFT config, the lr its recipe trains at, and the generator state
    ``apply_peft_config`` leaves (the method's seed), on a stand-in model (PEFT's build itself is not needed)."""
    import torch
    from omegaconf import OmegaConf

    from idlora import methods
    from idlora.training.recipes import recipe_for

    peft_config = methods.build_peft_config(method_cfg)
    monkeypatch.setattr(methods, "get_peft_model", lambda model, config: model)
    methods.apply_peft_config(torch.nn.Linear(2, 2), method_cfg, peft_config)
    draw = torch.rand(1).item()
    lr = recipe_for(OmegaConf.create(method_cfg)).lr(OmegaConf.create({"method": method_cfg}), 1.0)
    built = None if peft_config is None else {k: v for k, v in peft_config.to_dict().items()}
    return repr(built), lr, draw


@pytest.mark.parametrize("method", group_options("method"))
def test_every_key_of_every_method_file_is_read(method, monkeypatch):
    """Each key a method file sets changes what the method builds (its PEFT config, its lr, its seed): no knob in
    configs/method/ does nothing."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(compose(["scale=tiny", f"method={method}"]).method, resolve=True)
    reference = _what_it_builds(plain, monkeypatch)
    for key, value in plain.items():
        if key == "name":
            continue
        changed = _what_it_builds({**plain, key: _other(key, value)}, monkeypatch)
        assert changed != reference, f"configs/method/{method}.yaml: {key} is read by nothing"


def test_impl_is_set_only_where_there_is_a_choice_and_fft_refuses_adapter_keys():
    from idlora.methods import OFFICIAL_IMPLS

    for method in group_options("method"):
        assert ("impl" in compose([f"method={method}"]).method) == (method in OFFICIAL_IMPLS), method
    for key in ("alpha", "dropout"):
        with pytest.raises(ConfigError, match=f"method 'fft' trains every weight .*method.{key} would set nothing. "
                                              "Remove the override"):
            build_peft_config(compose(["method=fft", f"method.{key}=0.5"]).method)
