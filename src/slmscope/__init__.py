"""slmscope: what a small language model is worth under three deployment paradigms."""

__version__ = "0.1.0"
