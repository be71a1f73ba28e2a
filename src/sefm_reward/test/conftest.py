import numpy as np
import pytest

from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.testing import table_observations


@pytest.fixture
def moving_chain():
    """A reward model whose d reads its chain's places, pooled over 3 frames, on 6 frames whose said
    places are scripted to move from frame to frame (an untrained chain says the same on all):
    (model, observations, said tokens), ``said`` editable in place."""
    config = EFMConfig(reason=True, action_from="places", place_radices=[6, 4], steps_from="places", place_frames=3)
    model, obs = EFM.build(config), table_observations(6)
    sizes = model.action_slot_sizes[: model.embodiment.reasoning_slots].numpy()
    said = np.random.default_rng(0).integers(0, sizes, size=(len(obs), len(sizes)))
    model.said_places = lambda batch: said[[next(i for i, o in enumerate(obs) if o is x) for x in batch]]
    return model, obs, said
