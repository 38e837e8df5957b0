"""Low-rank factorisation step: rank by energy, exact at full energy, and factored models
reload from an ordinary checkpoint (also when pruned afterwards)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ad_perception.compress.export import example_input, exportable_core
from ad_perception.compress.lowrank import choose_rank, factor_layer, factorize
from ad_perception.compress.model_state import sync_config
from ad_perception.compress.prune import measure_size, prune
from ad_perception.compress.recipe import LowRankParams, PruneParams
from ad_perception.compress.tiny import tiny_config, tiny_model
from ad_perception.models.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_rank_is_the_smallest_that_keeps_the_energy():
    values = torch.tensor([3.0, 2.0, 1.0, 0.5])  # squared: 9, 4, 1, 0.25 of 14.25
    assert choose_rank(values, 0.6) == 1  # 9 / 14.25 = 0.63
    assert choose_rank(values, 0.95) == 3  # 14 / 14.25 = 0.98
    assert choose_rank(values, 1.0) == 4
    assert choose_rank(values, 0.6, round_to=8) == 4  # rounded up, capped at full rank


@pytest.mark.parametrize("layer", [torch.nn.Conv2d(24, 32, 3, stride=2, padding=1, bias=True),
                                   torch.nn.Linear(40, 24)])
def test_factor_pair_reproduces_the_layer_at_full_rank(layer):
    torch.manual_seed(0)
    shape = (2, 24, 12, 12) if isinstance(layer, torch.nn.Conv2d) else (5, 40)
    x = torch.randn(shape)
    full = min(layer.weight.shape[0], layer.weight[0].numel())
    with torch.no_grad():
        torch.testing.assert_close(factor_layer(layer, full)(x), layer(x), atol=1e-4,
                                   rtol=1e-4)
        half = factor_layer(layer, full // 2)(x)
    assert (half - layer(x)).abs().mean() > 1e-4  # a truncation really truncates


def _outputs(model, kind):
    with torch.no_grad():
        x = example_input(kind, tiny_config(kind)).normal_(generator=torch.Generator()
                                                           .manual_seed(4))
        return exportable_core(model, kind).eval()(x)


@pytest.mark.parametrize("kind", ["camera", "lidar"])
def test_factored_model_shrinks_and_reloads(kind, tmp_path):
    model, config = tiny_model(kind), tiny_config(kind)
    before = measure_size(model, kind, config)
    ranks, layers = factorize(model, kind, LowRankParams(energy=0.8, min_channels=16,
                                                        max_param_ratio=0.9))
    assert ranks and all(entry["energy_kept"] >= 0.8 for entry in layers.values())
    after = measure_size(model, kind, config)
    assert after.params < before.params and after.macs < before.macs
    output_ids = {id(m) for m in exportable_core(model, kind).output_layers()}
    assert all(id(model.get_submodule(name)) not in output_ids for name in ranks)
    config = sync_config(model, kind, dataclasses.replace(config, low_rank=ranks))
    # prune after factoring: the record must describe both changes
    prune(model, kind, config, PruneParams(ratio=0.25, scope="uniform"))
    config = sync_config(model, kind, config)
    save_checkpoint(model, tmp_path / "m.pt", config, {"command": "t", "seed": 0, "data": []})
    reloaded, _ = load_checkpoint(tmp_path / "m.pt")
    for got, want in zip(_outputs(reloaded, kind), _outputs(model, kind), strict=True):
        torch.testing.assert_close(got, want)
