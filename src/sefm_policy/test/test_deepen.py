import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig, TextConfig
from sefm_policy.deepen import deepened, layer_order
from sefm_policy.losses import steps_to_go_loss
from sefm_policy.model import EFM
from sefm_policy.testing import table_observations


def test_inserted_layers_follow_the_old_ones_as_evenly_as_they_divide():
    assert layer_order(2, 4) == [0, None, None, 1, None, None]
    assert layer_order(3, 4) == [0, None, None, 1, None, 2, None]
    assert layer_order(4, 1) == [0, None, 1, 2, 3]


def test_a_deepened_model_computes_what_it_did_and_its_new_layers_learn(tmp_path):
    torch.manual_seed(0)
    model = EFM.build(EFMConfig(reason=True, text=TextConfig(num_layers=2))).eval()
    obs = table_observations(4)
    deep = deepened(model, 3).eval()
    assert deep.config.text.num_layers == 5 and len(deep.backbone.model.language_model.layers) == 5
    assert torch.allclose(deep.expected_steps_to_go(obs), model.expected_steps_to_go(obs), atol=1e-5)
    # The old layers, now at 0 and 3, keep their weights; inserted ones start silent.
    layers = deep.backbone.model.language_model.layers
    old = model.backbone.model.language_model.layers
    assert torch.equal(layers[3].self_attn.q_proj.weight, old[1].self_attn.q_proj.weight)
    assert not layers[1].self_attn.o_proj.weight.any() and not layers[4].mlp.down_proj.weight.any()
    steps_to_go_loss(deep.train(), obs, [3, 10, 40, 70]).loss.backward()
    assert layers[1].self_attn.o_proj.weight.grad.abs().sum() > 0
    assert layers[4].mlp.down_proj.weight.grad.abs().sum() > 0
    save_checkpoint(deep.eval(), tmp_path / "deep")
    assert load_checkpoint(tmp_path / "deep").config.text.num_layers == 5


def test_deepening_a_pretrained_path_or_by_nothing_is_refused(tmp_path):
    model = EFM.build(EFMConfig())
    with pytest.raises(ConfigError, match="deepen"):
        deepened(model, 0)
    with pytest.raises(ConfigError, match="pretrained_path"):
        deepened(model.reconfigured(pretrained_path=str(tmp_path)), 1)
