import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.centre_fit import CentreFitConfig, fit_object_centres

CHAIN = EFMConfig(image_size=64, reason=True, action_from="places", place_radices=[4, 4])


def test_the_finder_is_fitted_on_boards_and_demonstrations_and_leaves_the_chain_as_it_was(tmp_path, demo_episodes):
    chain = EFM.build(CHAIN)
    save_checkpoint(chain, tmp_path / "chain")
    cfg = CentreFitConfig(
        init=str(tmp_path / "chain"),
        out=str(tmp_path / "snapping"),
        boards=6,
        held_out_boards=3,
        demonstrations=str(demo_episodes),
        demonstration_share=1.0,
        steps=4,
        batch_size=4,
        evals=2,
    )
    summary = fit_object_centres(cfg)
    assert summary["frames"] > 6  # the demonstrations' frames joined the boards
    assert [c["step"] for c in summary["held_out"]] == [2, 4]
    assert 0 <= summary["held_out"][-1]["object"]["within_1cm"] <= 1
    fitted = load_checkpoint(tmp_path / "snapping")
    assert fitted.config.snap_places
    ours = fitted.backbone.state_dict()
    assert all(torch.equal(ours[name], tensor) for name, tensor in chain.backbone.state_dict().items())
    untrained = EFM.build(CHAIN.model_copy(update={"snap_places": True})).object_centres
    assert not torch.equal(fitted.object_centres.head.weight, untrained.head.weight)

    copy = cfg.model_copy(update={"out": str(tmp_path / "copied"), "finder_from": str(tmp_path / "snapping")})
    fit_object_centres(copy)
    copied = load_checkpoint(tmp_path / "copied").object_centres.state_dict()
    assert all(torch.equal(copied[k], v) for k, v in fitted.object_centres.state_dict().items())
    with pytest.raises(ConfigError, match="no centre finder"):
        fit_object_centres(copy.model_copy(update={"finder_from": str(tmp_path / "chain")}))


def test_only_a_chain_of_places_can_snap(tmp_path):
    save_checkpoint(EFM.build(EFMConfig(image_size=64)), tmp_path / "plain")
    with pytest.raises(ConfigError, match="action_from: places"):
        fit_object_centres(CentreFitConfig(init=str(tmp_path / "plain"), out=str(tmp_path / "x"), boards=2))
