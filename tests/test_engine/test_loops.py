"""ResumableEpochBasedTrainLoop's skip: the rest of the pass, no draws."""
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmmask.engine import skip_batches
from mmmask.engine.hooks.random_state_hook import get_random_state
from tests.rank_state_dump import assert_same


class Augmented(Dataset):
    """Items that draw from every generator when loaded (as a pipeline)."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor([i, random.random(), np.random.rand(),
                             torch.rand(()).item()])


def test_skip_batches_draws_nothing_and_yields_the_rest():
    loader = DataLoader(Augmented(), batch_size=3)
    torch.manual_seed(0)
    state = get_random_state()
    rest = skip_batches(loader, 2)
    assert_same(get_random_state(), state, 'generators after the skip')
    batches = list(rest)
    assert [b[:, 0].tolist() for b in batches] == [[6, 7, 8], [9, 10, 11]]
