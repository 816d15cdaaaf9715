"""Recordings and datasets that standard tools read (MCAP, LeRobot)."""
