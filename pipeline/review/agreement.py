"""Agreement between analysts for the review app: the rules live in labels.py, so the app and notebook 3 agree."""

from __future__ import annotations

# The agreement page's API; kappa and pair_agreement are defined once, in labels.py.
from pipeline.labels import AGREEMENT_ASPECTS as ASPECTS  # noqa: F401
from pipeline.labels import disagreements, kappa, pair_agreement  # noqa: F401
