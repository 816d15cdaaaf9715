"""Isaac Sim / Isaac Lab backends. Everything here but lab_env.py runs without Isaac Sim: the
scene spec, the batched task, the vector env and the policy exporter are tested on the CPU;
sim/isaac/app.py (the standalone app) and lab_env.py need Isaac Sim 5.x on an RTX GPU."""
