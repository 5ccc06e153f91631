"""One torch thread per process in these runs.

On a shared 2-core machine, OpenMP's spinning threads of a 2-thread torch
fight other processes: a tiny epoch takes ~25 s instead of under 1 s. The
distributed runs already start with ``OMP_NUM_THREADS=1``.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
