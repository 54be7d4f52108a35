import os

from hypothesis import settings

# Property tests are deterministic in CI (same examples every run) and explore more locally on demand.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
settings.register_profile("deep", deadline=None, max_examples=5000)
# scripts/mutation.py: every mutant reruns the property tests; 50 derandomized examples each keep a module's run to
# hours, not days (the mutants these miss are the ones the full profile would have to find by chance)
settings.register_profile("mutation", derandomize=True, deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
