import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.pointer_fit import PointerFitConfig, chain_reads, fit_place_pointer, pointer_loss
from sefm_trainer.scene_chain import SceneChains


def test_a_fresh_place_pointer_is_fitted_on_the_frozen_chain_and_saved_beside_its_weights(tmp_path):
    chain = EFM.build(EFMConfig(image_size=64, reason=True, action_from="places", place_radices=[4, 4]))
    save_checkpoint(chain, tmp_path / "chain")
    cfg = PointerFitConfig(
        init=str(tmp_path / "chain"),
        out=str(tmp_path / "fitted"),
        scene_kind="blocks4",
        boards=6,
        held_out_boards=2,
        steps=30,
        batch_size=8,
        lr=1e-2,
        evals=2,
    )
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
