"""Hypothesis profiles: ``--hypothesis-profile=mutants`` (used by tests/mutants.py) skips shrinking."""
from hypothesis import Phase, settings

settings.register_profile("mutants", phases=[Phase.explicit, Phase.reuse, Phase.generate], database=None)
