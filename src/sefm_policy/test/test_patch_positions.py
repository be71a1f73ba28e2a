import numpy as np
import pytest
import torch

from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.patch_positions import sincos_2d
from sefm_policy.testing import table_observations


def test_a_tokens_row_and_column_are_a_linear_read_out_of_its_code():
    grid = 12
    code = sincos_2d(grid, 192).double()
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    features = torch.cat([code, torch.ones(grid * grid, 1, dtype=torch.float64)], 1)
    for index in (rows, cols):
        onehot = torch.nn.functional.one_hot(torch.from_numpy(index), grid).double()
        readout = torch.linalg.lstsq(features, onehot, driver="gelsd").solution
        assert np.array_equal((features @ readout).argmax(1).numpy(), index)
    # The row half is shared along a row, the column half down a column.
    assert torch.equal(code[0, :96], code[grid - 1, :96]) and torch.equal(code[0, 96:], code[grid * (grid - 1), 96:])


def test_patch_positions_change_what_the_decoder_sees_and_keep_the_weights_and_their_names(tmp_path):
    torch.manual_seed(0)
    plain = EFM.build(EFMConfig(reason=True)).eval()
    names = set(plain.backbone.state_dict())
    obs = table_observations(3)
    before = plain.expected_steps_to_go(obs)
    positioned = plain.reconfigured(patch_positions=True).eval()
    assert set(positioned.backbone.state_dict()) == names
    assert not torch.allclose(positioned.expected_steps_to_go(obs), before)
    save_checkpoint(positioned, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt").eval()
    assert loaded.config.patch_positions
    assert torch.equal(loaded.expected_steps_to_go(obs), positioned.expected_steps_to_go(obs))
    assert torch.allclose(loaded.reconfigured(patch_positions=False).expected_steps_to_go(obs), before)


def test_a_code_width_not_divisible_by_four_is_refused():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(6, 130)
