"""The demo report's steps-to-success figures against the demonstrations'."""
import math

import pytest

from robot_rl.report import speed_vs_demos


def test_mean_steps_and_speedup_over_the_successful_episodes():
    out = speed_vs_demos("deployed", [20.0, 30.0], 37.5)
    assert out == {"deployed_mean_steps_to_success": 25.0, "deployed_speedup_vs_demos": 1.5}


def test_missing_figures_are_left_out_not_invented():
    assert speed_vs_demos("torch", [], 27.0) == {}
    assert speed_vs_demos("torch", [27.0], None) == {"torch_mean_steps_to_success": 27.0}


@pytest.mark.parametrize("bad", [[0.0], [math.nan], [-3.0]])
def test_impossible_step_counts_are_refused(bad):
    with pytest.raises(ValueError, match="steps to success"):
        speed_vs_demos("deployed", bad, 27.0)
