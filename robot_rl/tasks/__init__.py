"""Tasks that ship with robot_rl, written only against the task interface (docs/tasks.md)."""
