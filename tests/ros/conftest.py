import pytest

from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Two untrained tiny EFMs (different seeds): the running policy and a reload target."""
    root = tmp_path_factory.mktemp("ckpt")
    return [save_checkpoint(EFM.build(EFMConfig(seed=s)), root / f"v{s}", {"version": s}) for s in (1, 2)]
