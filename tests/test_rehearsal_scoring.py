"""The rehearsal's scoring, without ROS: the classifier's verdicts against the operator's
success button (ground truth) only where the truth is steady, and the report's figures."""
import math
from pathlib import Path
from types import SimpleNamespace

from robot_rl.demo_rehearsal import ClassifierScorer, rehearsal_config, rehearsal_figures, stage_config


def test_scorer_counts_only_steady_idle_frames():
    s = ClassifierScorer(settle_s=0.5)
    s.on_verdict(True, 0.0)                 # nothing known yet
    s.on_reset_state("idle", 0.0)
    s.on_operator(False, 0.0)
    s.on_verdict(False, 0.2)                # truth not settled yet
    s.on_verdict(True, 1.0)                 # classifier says success, the world does not
    s.on_verdict(False, 1.1)
    s.on_operator(True, 2.0)                # the cube is up: the operator presses success
    s.on_verdict(True, 2.1)                 # the same control period: not scored
    s.on_verdict(True, 2.6)
    s.on_verdict(False, 2.7)
    s.on_reset_state("moving", 3.0)         # hands off the pad during a reset
    s.on_operator(False, 3.0)
    s.on_verdict(True, 4.0)
    s.on_reset_state("idle", 5.0)
    s.on_verdict(False, 5.6)
    assert s.counts == {"true_positive": 1, "false_positive": 1, "false_negative": 1,
                        "true_negative": 2}
    assert s.unscored == 4
    assert math.isclose(s.false_positive_rate, 1 / 3)
    assert math.isnan(ClassifierScorer().false_positive_rate)


def test_figures_carry_every_key():
    numbers = {"deployed_success_rate": 0.9, "privileged_subscriptions": 0,
               "classifier_false_positive_rate": 0.01,
               "classifier_confusion": {"true_positive": 5, "false_positive": 1,
                                        "false_negative": 2, "true_negative": 99}}
    figures = rehearsal_figures(numbers, elapsed_s=1800)
    assert figures == {"rehearsal_deployed_success_rate": 0.9, "rehearsal_wall_clock_min": 30.0,
                       "classifier_false_positive_rate": 0.01,
                       "classifier_false_positive_rate_deployed": 0.01,
                       "privileged_subscriptions": 0}


def test_stage_configs_keep_the_robot_view_and_score_only_at_deployment(tmp_path):
    cfg = rehearsal_config(SimpleNamespace(run_dir=str(tmp_path), config="", set=[]))
    assert cfg.sim.rehearsal and cfg.hil.device == "joy" and cfg.hil.reward.source == "classifier"
    assert "object" not in cfg.task.observations and "images" in cfg.task.observations
    assert cfg.agent.encoder.cache_image_features and cfg.hil.reset.mode == "move_then_human"
    demos = stage_config(cfg, "demos", Path(tmp_path))
    assert demos.sim.rehearsal and demos.sim.operator == "demonstrate"
    assert demos.hil.reward.source == "human" and demos.hil.reward.record_dir
    deploy = stage_config(cfg, "deploy", Path(tmp_path))
    assert not deploy.sim.rehearsal and deploy.task.observations == cfg.task.observations
