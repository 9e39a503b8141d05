"""The scorer: text in, per-label scores, a decision and evidence out.

`Screener` loads a self-describing artifact folder (see `models.artifact`) and screens
batches of texts. Every text is normalised once (`models.normalize`); the normalised text
feeds both the lexicon and the model, and every evidence span points into the original.

How lexicon hits combine with model scores (the artifact's ``lexicon_mode``, overridable
at load time):

- ``"max"`` (default): a label's score is ``max(model score, strongest hit weight)``. Rule
  weights live in the lexicon files: a contextual ad pattern weighs ~0.9 and can raise a
  label to review/block on its own; a bare ambiguous term weighs little and only adds
  evidence, because news and policy texts use the same words. A trained artifact caps
  each rule's weight by the rule's measured precision on the training split
  (``rule_weights``, see `training.calibrate`); tenant terms keep their own weight.
- ``"evidence"``: scores come from the model alone; hits are reported as evidence only.

A label is flagged when its score reaches its ``review`` threshold; the decision is
``block`` when any label reaches its ``block`` threshold, ``review`` when any label is
flagged, else ``pass``. Thresholds are per label, stored in the artifact and overridable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.artifact import Artifact, Thresholds, load_artifact
from models.labels import LABELS, Label
from models.lexicon import Hit, Lexicon
from models.normalize import normalize

Decision = Literal["pass", "review", "block"]
LexiconMode = Literal["max", "evidence"]
LEXICON_MODES: tuple[str, ...] = ("max", "evidence")


@dataclass(frozen=True)
class Evidence:
    """A span of the original text that supports a label."""

    label: str
    start: int
    end: int
    text: str
    source: str  # "lexicon": a rule matched; the rule id is kept for reviewers
    rule_id: str = ""


@dataclass(frozen=True)
class Screening:
    """The result for one text."""

    decision: Decision
    labels: list[str]
    scores: dict[str, float]
    evidence: list[Evidence] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by `jingwang scan`, the API and the crawler feed."""
        return {
            "decision": self.decision,
            "labels": list(self.labels),
            "scores": dict(self.scores),
            "evidence": [
                {k: v for k, v in asdict(e).items() if k != "rule_id"} for e in self.evidence
            ],
        }


class Screener:
    """Screens texts with one artifact's model, lexicon and thresholds."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        lexicon: Lexicon | None = None,
        lexicon_mode: LexiconMode | None = None,
        thresholds: Mapping[str, Thresholds] | None = None,
    ) -> None:
        self.artifact = artifact
        self.lexicon = lexicon if lexicon is not None else Lexicon.load()
        self.lexicon_mode: LexiconMode = lexicon_mode or artifact.lexicon_mode
        if self.lexicon_mode not in LEXICON_MODES:
            raise ValueError(f"lexicon_mode must be one of {LEXICON_MODES}, got {self.lexicon_mode!r}")
        self.thresholds: dict[str, Thresholds] = {**artifact.thresholds, **(thresholds or {})}
        self.rule_weights: dict[str, float] = artifact.info.get("rule_weights", {})
        self._model = artifact.load_model()

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        *,
        lexicon: Lexicon | None = None,
        lexicon_mode: LexiconMode | None = None,
        thresholds: Mapping[str, Thresholds] | None = None,
    ) -> Screener:
        """Load a shipped artifact by name (``default``, ``baseline``, ``lexicon``) or a folder."""
        return cls(
            load_artifact(model),
            lexicon=lexicon,
            lexicon_mode=lexicon_mode,
            thresholds=thresholds,
        )

    @property
    def info(self) -> dict[str, Any]:
        """The artifact's metadata (labels, thresholds, versions, metrics, ...)."""
        return self.artifact.info

    def screen(self, texts: Sequence[str], *, lexicon: Lexicon | None = None) -> list[Screening]:
        """Screen a batch. ``lexicon`` replaces the default one for this call (tenant terms)."""
        return [
            self._decide(scores, evidence)
            for scores, evidence in zip(*self.score(texts, lexicon=lexicon), strict=True)
        ]

    def score(
        self, texts: Sequence[str], *, lexicon: Lexicon | None = None
    ) -> tuple[np.ndarray, list[list[Evidence]]]:
        """Combined per-label scores, shape (len(texts), len(LABELS)), and evidence per text."""
        lexicon = self.lexicon if lexicon is None else lexicon
        normalized = [normalize(text) for text in texts]
        scores = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        live = [i for i, n in enumerate(normalized) if n.text.strip()]
        live_set = set(live)
        if live and self._model is not None:
            scores[live] = self._model.predict_proba([normalized[i].text for i in live])
        evidence: list[list[Evidence]] = []
        for i, (text, n) in enumerate(zip(texts, normalized, strict=True)):
            hits = lexicon.scan_normalized(n) if i in live_set else []
            if self.lexicon_mode == "max" or self._model is None:
                for hit in hits:
                    column = LABELS.index(hit.label)
                    weight = self.rule_weights.get(hit.rule_id, hit.weight)
                    scores[i, column] = max(scores[i, column], weight)
            # One piece of evidence per span: two rules hitting the same words are one finding.
            spans: dict[tuple[Label, int, int], Hit] = {}
            for hit in hits:
                spans.setdefault((hit.label, hit.start, hit.end), hit)
            evidence.append([_evidence(text, hit) for hit in spans.values()])
        return np.clip(scores, 0.0, 1.0), evidence

    def _decide(self, row: np.ndarray, evidence: list[Evidence]) -> Screening:
        scores = {label.value: round(float(s), 4) for label, s in zip(LABELS, row, strict=True)}
        flagged = [lab for lab, s in scores.items() if s >= self.thresholds[lab].review]
        decision: Decision = "pass"
        if flagged:
            blocked = any(scores[lab] >= self.thresholds[lab].block for lab in flagged)
            decision = "block" if blocked else "review"
        return Screening(decision=decision, labels=flagged, scores=scores, evidence=evidence)


def _evidence(text: str, hit: Hit) -> Evidence:
    return Evidence(
        label=hit.label.value,
        start=hit.start,
        end=hit.end,
        text=text[hit.start : hit.end],
        source="lexicon",
        rule_id=hit.rule_id,
    )
