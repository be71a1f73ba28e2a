import pytest
import torch

from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return EFM.build(EFMConfig()).eval()


@pytest.fixture
def tiny_aloha():
    return EFM.build(EFMConfig(embodiment="aloha")).eval()
