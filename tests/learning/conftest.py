import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    # The test networks are tiny: one thread is faster than two and, on a
    # shared CI box, avoids OpenMP barrier stalls when a core is busy.
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
