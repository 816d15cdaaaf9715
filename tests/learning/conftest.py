import pytest
import torch

from robot_rl.learning.rlpd import has_native_bf16


@pytest.fixture(autouse=True)
def _single_torch_thread():
    # The test networks are tiny: one thread is faster than two and, on a
    # shared CI box, avoids OpenMP barrier stalls when a core is busy.
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(params=["fp32", pytest.param("bf16", marks=pytest.mark.skipif(
    not has_native_bf16(torch.device("cpu")),
    reason="this CPU has no native bf16 (its refusal: test_bf16_without_native_support_is_refused)"))])
def precision(request) -> str:
    """agent.precision, both values where this CPU multiplies bf16 natively."""
    return request.param
