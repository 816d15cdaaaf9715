"""Human in the loop: interventions, resets, episodes and rewards (ROS-free cores)."""
