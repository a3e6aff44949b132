"""selfevolve: models that improve by generating, judging, selecting and learning from their own data."""

__version__ = "0.1.0"
