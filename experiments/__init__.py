"""Hydra config groups: method/ (generated from the method registry), scenario/, task/, model/, grid/."""
