import os

from hypothesis import settings

# Property tests are deterministic in CI (same examples every run) and explore more locally on demand.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
settings.register_profile("deep", deadline=None, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
