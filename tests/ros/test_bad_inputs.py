"""bench/bad_inputs.py as a regression guard: every bad input of the table, once, against a
running signed and restricted training graph; no node may crash (issue 19 figure, target 0)."""
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bad_inputs.py"


def test_no_node_crashes_on_bad_inputs(tmp_path):
    spec = importlib.util.spec_from_file_location("bad_inputs", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(repeat=1, workdir=str(tmp_path))
    print(bench.table(result))
    assert result["crashes"] == 0, result["crashed"]
    assert all(r["crashes"] == 0 for r in result["rows"])
    learner, actor = result["rejections_after"]["learner"], result["rejections_after"]["actor"]
    for reason in ("bad_event", "unsigned", "unknown_key", "actor_id_mismatch", "out_of_range",
                   "bad_signature"):
        assert learner.get(reason, 0) >= 1, (reason, learner)
    for reason in ("unsigned", "unfit_weights", "intervention_non_finite"):
        assert actor.get(reason, 0) >= 1, (reason, actor)
    assert result["recorder_ignored"] > 0
    reset = result["rows"][-1]
    assert reset["refused"] == reset["answered"] > 0  # no call got through without a token
