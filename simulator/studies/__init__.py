"""Studies: many scenarios, one function each (compare, sweep, plan, sensitivity)."""
