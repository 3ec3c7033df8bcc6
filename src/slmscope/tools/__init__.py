"""Tools the agents call (calculator, Python sandbox, knowledge search, lookup): next issue."""
