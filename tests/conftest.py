import os

# Tests never touch the network or the user's caches.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own IDLORA_CACHE (PMRC indices, generated data), so tests cannot see each other's files."""
    if "IDLORA_TEST_SHARED_CACHE" not in os.environ:
        monkeypatch.setenv("IDLORA_CACHE", str(tmp_path_factory.mktemp("idlora_cache")))


@pytest.fixture
def counted_clustering(monkeypatch):
    """Replace the k-means by a cheap deterministic stand-in that counts its calls (the caching logic is under test)."""
    import torch

    from idlora import pmrc

    calls = []

    def fake(weight, k, r, seed, backend="reference", restarts=None):
        calls.append(tuple(weight.shape))
        order = torch.argsort(weight.float().norm(dim=1), stable=True)  # some weight-dependent choice
        return torch.roll(order, seed)[: k * r].reshape(k, r)  # and seed-dependent, as PMRC's: adapters differ

    monkeypatch.setattr(pmrc, "pmrc_rows", fake)
    # the torch backend clusters same-shape matrices in batches: count each matrix of a batch
    monkeypatch.setattr(pmrc, "pmrc_rows_batch",
                        lambda weights, k, r, seed, restarts=None: [fake(w, k, r, seed) for w in weights])
    return calls
