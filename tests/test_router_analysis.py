"""What the router does (idlora/analysis/router.py, `make fig_router`): the statistics against hand computations on a
hand-built alpha, the hooks against the literal router on a tiny random LLaMA, and the figure end to end."""

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from idlora.config import compose
from idlora.errors import ConfigError
from idlora.methods import apply_method
from idlora.models.tiny import tiny_llama
from idlora.analysis.router import adapted_layers, collect_alphas, layer_statistics, make_fig_router
from idlora.results import new_run_record, write_run_record

SEQ_A = [[0.5, 0.5, 0.0], [0.9, 0.05, 0.05]]
SEQ_B = [[0.2, 0.7, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]


def test_statistics_of_a_hand_built_alpha():
    stats = layer_statistics([torch.tensor(SEQ_A, dtype=torch.float64), torch.tensor(SEQ_B, dtype=torch.float64)])
    tokens = SEQ_A + SEQ_B
    n, k = len(tokens), 3

    def entropy(p):
        return -sum(x * math.log(x) for x in p if x > 0)  # 0 log 0 = 0

    h = sum(entropy(p) for p in tokens) / n
    assert stats["entropy_mean"] == pytest.approx(h, abs=1e-12)
    assert stats["entropy_norm"] == pytest.approx(h / math.log(3), abs=1e-12)
    # argmax: cluster 1 for the first two tokens (0.5 ties 0.5: the first), cluster 2 twice, cluster 3 once
    assert stats["argmax_share"] == pytest.approx([2 / 5, 2 / 5, 1 / 5])

    def mean(rows):
        return [sum(r[i] for r in rows) / len(rows) for i in range(k)]

    def sq(u, v):
        return sum((a - b) ** 2 for a, b in zip(u, v))

    grand = mean(tokens)
    within = (sum(sq(t, mean(SEQ_A)) for t in SEQ_A) + sum(sq(t, mean(SEQ_B)) for t in SEQ_B)) / n
    between = (len(SEQ_A) * sq(mean(SEQ_A), grand) + len(SEQ_B) * sq(mean(SEQ_B), grand)) / n
    total = sum(sq(t, grand) for t in tokens) / n
    assert stats["within_var"] == pytest.approx(within, abs=1e-12)
    assert stats["between_var"] == pytest.approx(between, abs=1e-12)
    assert stats["total_var"] == pytest.approx(total, abs=1e-12) == pytest.approx(within + between, abs=1e-12)
    assert stats["within_share"] == pytest.approx(within / total)
    assert stats["alpha_mean"] == pytest.approx(grand) and (stats["tokens"], stats["sequences"]) == (5, 2)


def test_raw_scores_have_no_entropy_and_a_constant_alpha_no_variance():
    raw = layer_statistics([torch.tensor([[2.0, -1.0], [0.5, 0.1]])])
    assert not raw["is_distribution"] and raw["entropy_mean"] is None and raw["entropy_norm"] is None
    flat = layer_statistics([torch.full((4, 4), 0.25), torch.full((2, 4), 0.25)])
    assert flat["entropy_norm"] == pytest.approx(1.0) and flat["total_var"] == 0 and flat["within_share"] is None


def _perturbed(cfg):
    model = apply_method(tiny_llama(), cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


@pytest.mark.parametrize("router", ["linear", "text", "uniform"])
def test_hooks_read_the_literal_router_and_change_nothing(router):
    model = _perturbed({"name": "idlora", "r": 4, "k": 4, "alpha": 8, "selection": "serial", "router": router})
    seqs = [torch.randint(3, 250, (n,), generator=torch.Generator().manual_seed(n)) for n in (5, 9)]
    before = [model(input_ids=s.reshape(1, -1)).logits for s in seqs]
    inputs = {}  # the layers' inputs, caught independently
    layers = adapted_layers(model)
    handles = [layer.register_forward_pre_hook(lambda m, a, name=name: inputs.setdefault(name, []).append(a[0][0]))
               for name, layer in layers.items()]
    alphas = collect_alphas(model, seqs)
    for hd in handles:
        hd.remove()
    after = [model(input_ids=s.reshape(1, -1)).logits for s in seqs]
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # the hooks are gone and changed no output
    assert set(alphas) == set(layers) and len(layers) == 14  # 2 decoder layers x 7 projections
    name = "model.layers.1.mlp.up_proj"
    layer = layers[name]
    W, index = layer.get_base_layer().weight, layer.idlora_index["default"]
    for s, (h, got) in enumerate(zip(inputs[name], alphas[name])):
        assert got.shape == (len(seqs[s]), 4)
        if router == "uniform":
            expected = torch.full((len(seqs[s]), 4), 0.25)
        elif router == "linear":
            expected = torch.softmax(h @ layer.idlora_router["default"].weight.T, -1)  # softmax(R h)
        else:
            T = layer.idlora_router["default"].weight[0]
            expected = torch.stack([(h @ W[index[i]].T) @ T for i in range(4)], -1)  # T . A_i h, no softmax
        torch.testing.assert_close(got, expected.float(), rtol=1e-5, atol=1e-6)


def _tiny_run(tmp_path, router="linear"):
    cfg = compose(["experiment=gsm8k_llama3", "scale=tiny", "method=idlora", f"method.router={router}",
                   "method.selection=serial", f"run_tag=_{router}"])
    from idlora.models import load_model_and_tokenizer

    base, tokenizer = load_model_and_tokenizer(cfg.model)
    model = apply_method(base, cfg.method)
    adapter = tmp_path / "runs" / cfg.run_id / "adapter"
    model.save_pretrained(adapter)
    config = OmegaConf.to_container(cfg, resolve=True)
    record = new_run_record(cfg.run_id, cfg.experiment, "tiny", cfg.paper_model, "idlora", config, 1, 2)
    record["train"] = {"steps": 0, "adapter_dir": str(adapter)}
    write_run_record(tmp_path / "results" / f"{cfg.run_id}.json", record)
    return cfg.run_id


def test_fig_router_writes_png_and_json(tmp_path):
    run_id = _tiny_run(tmp_path)
    png, js = make_fig_router(run_id, tmp_path / "results", tmp_path / "figures", tmp_path / "router", prompts=3)
    assert png == tmp_path / "figures" / "fig_router.png" and png.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(js.read_text())
    assert js == tmp_path / "router" / f"{run_id}.json"
    assert data["prompts"] == {"gsm8k": 3} and data["router"] == "linear" and data["k"] == 4
    layer = data["layers"]["model.layers.0.self_attn.q_proj"]
    assert layer["sequences"] == 3 and 0 < layer["entropy_norm"] <= 1 and sum(layer["argmax_share"]) == pytest.approx(1)
    assert data["summary"]["entropy_norm"]["min"] <= data["summary"]["entropy_norm"]["max"] <= 1


def test_fig_router_refuses_what_it_cannot_read(tmp_path):
    from idlora.reports.figures import make_figure

    with pytest.raises(ConfigError, match="pass run=<run id>"):
        make_figure("fig_router", out_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="fig3 does not take them"):
        make_figure("fig3", run="x")
    with pytest.raises(ConfigError, match="no results file for run 'nope'"):
        make_fig_router("nope", tmp_path)
    run_id = _tiny_run(tmp_path)
    with pytest.raises(ConfigError, match="prompts=0"):
        make_fig_router(run_id, tmp_path / "results", prompts=0)
