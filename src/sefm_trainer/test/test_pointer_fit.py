import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.pointer_fit import PointerFitConfig, chain_reads, fit_place_pointer, pointer_loss
from sefm_trainer.scene_chain import SCENE_KINDS, SceneChains


def small_fit(tmp_path, out: str, **changes) -> PointerFitConfig:
    """A fit of ``tmp_path/chain`` on a few 4-block boards, sized for a test."""
    base = dict(scene_kind="blocks4", boards=4, held_out_boards=2, steps=10, batch_size=8, lr=1e-2, evals=1)
    return PointerFitConfig(init=str(tmp_path / "chain"), out=str(tmp_path / out), **(base | changes))


def test_a_fresh_place_pointer_is_fitted_on_the_frozen_chain_and_saved_beside_its_weights(tmp_path):
    chain = EFM.build(EFMConfig(image_size=64, reason=True, action_from="places", place_radices=[4, 4]))
    save_checkpoint(chain, tmp_path / "chain")
    cfg = small_fit(tmp_path, "fitted", boards=6, steps=30, evals=2)
    curve = fit_place_pointer(cfg)["right_patch_on_held_out_boards"]
    assert [c["step"] for c in curve] == [15, 30]
    assert all(0.0 <= c[p] <= 1.0 for c in curve for p in ("object", "target", "effector"))
    fitted = load_checkpoint(tmp_path / "fitted")
    assert fitted.config.place_pointer
    ours = fitted.backbone.state_dict()
    assert all(torch.equal(ours[name], tensor) for name, tensor in chain.backbone.state_dict().items())
    fresh = chain.reconfigured(place_pointer=True).pointer  # where the fit started
    chains = SceneChains(64, "blocks4")
    reads = chain_reads(fitted, chains, 6, 0, 8)
    chains.close()
    with torch.no_grad():
        assert pointer_loss(fitted.pointer, reads)[0] < pointer_loss(fresh, reads)[0]
    save_checkpoint(EFM.build(EFMConfig(image_size=64)), tmp_path / "plain")
    with pytest.raises(ConfigError, match="reason"):
        fit_place_pointer(cfg.model_copy(update={"init": str(tmp_path / "plain")}))


def test_a_trained_pointer_is_fitted_with_its_words_order_on_every_board_kind_and_keeps_what_it_had(tmp_path):
    config = EFMConfig(image_size=64, reason=True, action_from="places", place_radices=[4, 4], place_pointer=True)
    chain = EFM.build(config)
    save_checkpoint(chain, tmp_path / "chain")
    cfg = small_fit(tmp_path, "ordered", word_order=True)
    fit_place_pointer(cfg)
    ordered = load_checkpoint(tmp_path / "ordered")
    assert ordered.config.pointer_word_order
    assert ordered.pointer.word_gates.value.weight.abs().sum() > 0  # fitted from zero
    again = {"init": str(tmp_path / "ordered"), "out": str(tmp_path / "again"), "word_order": False}
    summary = fit_place_pointer(cfg.model_copy(update=again | {"scene_kind": "every", "boards": len(SCENE_KINDS)}))
    assert summary["questions"] == 2 * len(SCENE_KINDS)  # a board of every kind, two questions each
    assert load_checkpoint(tmp_path / "again").config.pointer_word_order  # a pointer keeps the order it has
