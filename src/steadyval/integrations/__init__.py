"""Integrations: record the validation predictions of a training loop steadyval did not run.

``RunRecorder`` writes a run folder from any loop; ``steadyval.integrations.keras`` and
``steadyval.integrations.lightning`` hold callbacks that feed it (each imports its framework,
so import the one you use). ``steadyval analyze FOLDER`` then analyses the run per image.
"""

from steadyval.integrations.recorder import RunRecorder

__all__ = ["RunRecorder"]
