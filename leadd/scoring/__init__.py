"""Lead scoring with an OpenAI-compatible model.

Each lead of a search with a profile gets a score, reasons and an outreach line.

Nothing in this package imports the ``openai`` SDK at import time, so a
daemon with scoring configured starts as fast as one without it.
"""

from leadd.scoring.scorer import Scorer

__all__ = ["Scorer"]
