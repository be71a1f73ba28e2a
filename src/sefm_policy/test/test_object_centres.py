import numpy as np
import pytest
import torch
from pydantic import ValidationError

from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.object_centres import SNAP_RADIUS, ObjectCentres, centre_loss, centre_targets, snap
from sefm_policy.testing import table_observations

CHAIN = dict(image_size=64, reason=True, action_from="places", place_radices=[4, 4])


class Told(ObjectCentres):
    """A finder whose outputs are the targets of known centres: what a perfectly fitted one says."""

    def __init__(self, points):
        super().__init__(channels=4)
        self.points = points

    def forward(self, pixels):
        heat, offset, _ = centre_targets(self.points, (pixels.shape[-2] // 2, pixels.shape[-1] // 2))
        return torch.logit(heat.clamp(1e-3, 1 - 1e-3)), offset


def test_centres_read_back_the_places_their_targets_were_made_from():
    points = [
        {"object": np.array([[0.2031, 0.7012], [0.61, 0.33]]), "effector": np.array([[0.9, 0.12]])},
        {"object": np.zeros((0, 2)), "effector": np.array([[0.5, 0.5]])},
    ]
    found = Told(points).centres(torch.zeros(2, 3, 96, 96))
    for said, true in zip(found, points, strict=True):
        for kind in ("object", "effector"):
            assert len(said[kind]) == len(true[kind])
            for xy in true[kind]:
                assert np.abs(said[kind] - xy).sum(-1).min() < 1e-5


def test_the_centre_loss_is_lower_for_the_true_centres_than_for_centres_one_cell_off():
    true = [{"object": np.array([[0.3, 0.4]]), "effector": np.array([[0.7, 0.7]])}]
    off = [{"object": np.array([[0.3 + 2 / 48, 0.4]]), "effector": np.array([[0.7, 0.7]])}]
    targets = centre_targets(true, (48, 48))
    right = Told(true)(torch.zeros(1, 3, 96, 96))
    wrong = Told(off)(torch.zeros(1, 3, 96, 96))
    assert centre_loss(*right, targets) < centre_loss(*wrong, targets)


def test_snap_moves_each_read_onto_the_nearest_centre_of_its_kind_and_never_two_onto_one():
    reads = np.array([[[0.50, 0.50], [0.56, 0.50], [0.20, 0.20]]])  # object, target, effector
    centres = [{"object": np.array([[0.52, 0.51], [0.90, 0.90]]), "effector": np.array([[0.21, 0.19]])}]
    moved = snap(reads, centres)
    assert np.allclose(moved[0, 0], [0.52, 0.51])  # the nearer read takes the one centre near both
    assert np.allclose(moved[0, 1], [0.56, 0.50])  # the other stays where it was read
    assert np.allclose(moved[0, 2], [0.21, 0.19])
    two = [{"object": np.array([[0.52, 0.51], [0.57, 0.50]]), "effector": np.zeros((0, 2))}]
    assert np.allclose(snap(reads, two)[0, :2], [[0.52, 0.51], [0.57, 0.50]])
    assert np.allclose(snap(reads, two)[0, 2], reads[0, 2])  # no effector seen: kept
    far = [{"object": np.array([[0.5 + 1.5 * SNAP_RADIUS, 0.5]]), "effector": np.zeros((0, 2))}]
    assert np.allclose(snap(reads, far)[0, 0], reads[0, 0])  # beyond the radius: kept


def test_a_snapping_chain_says_the_centres_it_sees_and_its_checkpoint_carries_the_finder(tmp_path):
    model = EFM.build(EFMConfig(**CHAIN, snap_places=True)).eval()
    observations = table_observations(2, size=64)
    plain = model.reconfigured(snap_places=False).said_places(observations)
    read = model.embodiment.action.decode_places(plain)
    points = [{"object": r[:2] + 0.01, "effector": r[2:] - 0.01} for r in read]
    model.backbone.object_centres = Told(points)
    said = model.embodiment.action.decode_places(model.said_places(observations))
    unit = 1 / 16  # place_radices [4, 4]: a place is said to a sixteenth of the image
    assert np.abs(said - np.concatenate([read[:, :2] + 0.01, read[:, 2:] - 0.01], 1)).max() <= unit / 2
    acted = model.sample_actions(observations, greedy=True).tokens[:, : plain.shape[1]]
    assert np.array_equal(acted, model.said_places(observations))  # acting reads the snapped places too

    trained = EFM.build(EFMConfig(**CHAIN, snap_places=True))
    torch.nn.init.normal_(trained.object_centres.head.weight)
    save_checkpoint(trained, tmp_path / "snapping")
    loaded = load_checkpoint(tmp_path / "snapping")
    assert torch.equal(loaded.object_centres.head.weight, trained.object_centres.head.weight)
    assert load_checkpoint(tmp_path / "snapping").reconfigured(snap_places=False).object_centres is None


def test_snapping_needs_a_chain_of_places():
    with pytest.raises(ValidationError, match="snap_places needs action_from"):
        EFMConfig(image_size=64, snap_places=True)
