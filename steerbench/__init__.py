"""steerbench: compare entropy interventions for RLVR under identical settings, and check Ω."""

__version__ = "0.1.0"
