"""System level: launch files as processes, the demo delivery, scenarios and fault injection."""
