"""Settings and planning: the frozen settings model, the pure planner, ports, names, prices
and the shared credentials."""
