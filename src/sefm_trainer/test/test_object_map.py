import numpy as np
import torch

from sefm_policy.config import EFMConfig, VisionConfig
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_sim_bridge.scene import board_point
from sefm_trainer.object_map import EFFECTOR, OBJECT_NAMES, SUB, ObjectMap, object_map_loss, object_targets


def test_an_object_is_told_by_the_patch_holding_its_centre_and_its_sub_cell_there():
    grid = 12
    # Centre of patch (row 3, column 7), in its sub-cell (1, 2) of SUB x SUB.
    row, column = (3 + (1 + 0.5) / SUB) / grid, (7 + (2 + 0.5) / SUB) / grid
    targets = object_targets({"red moon": board_point(column, row)}, board_point(0.01, 0.99), grid)
    moon, effector = OBJECT_NAMES.index("red moon"), OBJECT_NAMES.index(EFFECTOR)
    assert tuple(targets[moon]) == (3 * grid + 7, 1 * SUB + 2)
    assert tuple(targets[effector]) == (11 * grid + 0, int(0.99 * grid % 1 * SUB) * SUB + 0)
    absent = [k for k in range(len(OBJECT_NAMES)) if k not in (moon, effector)]
    assert (targets[absent] == -1).all()
    parked = object_targets({"red moon": (5.0, 0.0)}, board_point(0.5, 0.5), grid)
    assert (parked[moon] == -1).all(), "an object off the board is not a target"


def test_the_tower_learns_where_two_blocks_are_from_the_dense_target():
    model = EFM.build(EFMConfig(image_size=32, vision=VisionConfig(patch_size=8, hidden_size=32)))
    head = ObjectMap(32)
    grid, rng = 4, np.random.default_rng(0)
    obs, targets = [], []
    for _ in range(8):
        image = np.zeros((32, 32, 3), np.uint8)
        places = {}
        for name, colour in (("red moon", (220, 40, 40)), ("blue cube", (40, 90, 230))):
            r, c = rng.integers(2, 30, 2)
            image[r - 2 : r + 2, c - 2 : c + 2] = colour
            places[name] = board_point((c + 0.5) / 32, (r + 0.5) / 32)
        obs.append(Observation(images=(image, image), instruction=""))
        targets.append(object_targets(places, (9.0, 9.0), grid))
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=5e-3)
    first = object_map_loss(model, obs, targets, head)
    for _ in range(80):
        optimizer.zero_grad()
        out = object_map_loss(model, obs, targets, head)
        out.loss.backward()
        optimizer.step()
    assert out.loss.item() < 0.3 * first.loss.item()
    assert out.metrics["objects/cell_acc"] == 1.0
