"""A weighted average of member models' probabilities.

An ensemble artifact names complete artifact folders as members, by path relative to its
own folder (``members: [{"path": "../bert", "weight": 0.8, "sha256": ...}, ...]``), so each
member is also loadable and measurable alone and no weights are stored twice. The sha256 of
each member's ``artifact.json`` is checked on load: a member retrained after the ensemble
was calibrated is refused rather than mixed with weights tuned for its predecessor. Averaging a fine-tuned BERT with the
character/word TF-IDF model reduces the confident mistakes either makes alone on near-miss
texts (measured in the README's model card).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import ProbabilityModel, load_artifact
from models.errors import ArtifactError


def member_digest(folder: Path) -> str:
    """sha256 of a member's ``artifact.json`` (its thresholds, data hash and files it names)."""
    return hashlib.sha256((folder / "artifact.json").read_bytes()).hexdigest()


class EnsembleClassifier:
    """Weighted sum of member probabilities; weights sum to 1."""

    def __init__(self, members: list[tuple[ProbabilityModel, float]]) -> None:
        self.members = members

    @classmethod
    def load(cls, directory: Path, info: dict[str, Any]) -> EnsembleClassifier:
        members = []
        for member in info["members"]:
            folder = directory / member["path"]
            if member.get("sha256") and member_digest(folder) != member["sha256"]:
                raise ArtifactError(
                    f"member {member['path']!r} changed since this ensemble was calibrated; "
                    "rebuild it with `jingwang ensemble`",
                    path=directory,
                )
            artifact = load_artifact(folder)
            model = artifact.load_model()
            if model is None:
                raise ArtifactError(f"member {member['path']!r} has no model", path=directory)
            members.append((model, float(member["weight"])))
        total = sum(weight for _, weight in members)
        if not members or abs(total - 1.0) > 1e-6:
            raise ArtifactError(f"member weights must sum to 1, got {total}", path=directory)
        return cls(members)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return sum(weight * model.predict_proba(texts) for model, weight in self.members)
