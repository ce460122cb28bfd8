"""Shared test configuration: hypothesis profiles and the GPU marker's skip logic.

``HYPOTHESIS_PROFILE=ci`` (the default; 50 examples a property) or ``dev`` (10, for quick
local runs). Numerical properties have no deadline.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
