"""Online monitoring of the stack: the learned model's health against the lidar."""
