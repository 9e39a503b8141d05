"""jingwang's screening core: labels, the normaliser, lexicon rules and the scorer.

Everything else (training, the service, the crawler) imports from here:

    from models import Screener
    Screener.load().screen(["..."])[0].decision   # "pass" | "review" | "block"
"""

from models.artifact import Thresholds
from models.errors import ArtifactError, InputError, JingwangError
from models.labels import CHINESE_NAMES, LABELS, Label
from models.lexicon import Hit, Lexicon
from models.normalize import NORMALIZER_VERSION, Normalized, normalize
from models.scorer import Evidence, Screener, Screening

__all__ = [
    "CHINESE_NAMES",
    "LABELS",
    "NORMALIZER_VERSION",
    "ArtifactError",
    "Evidence",
    "Hit",
    "InputError",
    "JingwangError",
    "Label",
    "Lexicon",
    "Normalized",
    "Screener",
    "Screening",
    "Thresholds",
    "normalize",
]
