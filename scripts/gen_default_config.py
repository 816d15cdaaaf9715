"""Regenerate the tail of config/default.yaml (sections after the hand-annotated ones)
from the dataclass defaults: run `python scripts/gen_default_config.py` after changing them."""
import yaml
from robot_rl.config import Config
from robot_rl.config import config_dict as to_dict  # without derived keys (safety.control_rate_hz)
MARK = "# --- generated below from the dataclass defaults"
p = "config/default.yaml"
text = open(p).read()
text = text.split(MARK)[0].rstrip() + "\n\n"
d = to_dict(Config())
notes = {"agent": "RLPD/SERL agent (robot_rl/learning/config.py)",
         "actor": "actor node", "learner": "learner node",
         "hil": "human in the loop: intervention device, simulated human, resets, rewards",
         "safety": "deployment safety layer (robot_rl/deploy/safety.py)",
         "deploy": "deployment controller node",
         "security": "authenticated learning traffic (robot_rl/security.py, docs/security.md)",
         "recording": "MCAP recording of the topic contract (docs/data.md)",
         "view": "robot-rl view: live Rerun view in the browser (docs/data.md)"}
text += MARK + " by scripts/gen_default_config.py ---\n"
for key, note in notes.items():
    text += f"\n# {note}\n" + yaml.safe_dump({key: d[key]}, sort_keys=False)
open(p, "w").write(text)
