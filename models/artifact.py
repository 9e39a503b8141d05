"""Self-describing model artifacts.

An artifact is a folder holding ``artifact.json`` and the files it names. The JSON carries
everything a scorer needs, so nothing is hard-coded elsewhere:

    kind                "lexicon" (rules only), "tfidf" (scikit-learn baseline), "onnx" (BERT)
                        or "ensemble" (weighted average of member artifacts in sub-folders)
    labels              output columns, must equal `models.labels.LABELS`
    thresholds          {label: {"review": float, "block": float}}
    normalizer_version  the `models.normalize` version the model was trained with
    lexicon_mode        how lexicon hits combine with model scores (see `models.scorer`)
    ...                 kind-specific keys (model_file, tokenizer, max_length), base model,
                        licence, training-data hash, metrics, creation time

Shipped artifacts live in ``models/artifacts/<name>/`` and are loaded by name.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.errors import ArtifactError
from models.labels import LABELS

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
DEFAULT_MODEL = "default"
REQUIRED_KEYS = ("kind", "labels", "thresholds", "normalizer_version")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "lexicon": (),
    "tfidf": ("model_file",),
    "onnx": ("model_file", "tokenizer", "max_length"),
    "ensemble": ("members",),
}


@dataclass(frozen=True)
class Thresholds:
    """Per-label score cut-offs: at ``review`` a label is flagged, at ``block`` the item is blocked."""

    review: float
    block: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.block <= 1.0:
            raise ValueError(
                f"thresholds need 0 <= review <= block <= 1, got review={self.review} block={self.block}"
            )


class ProbabilityModel(Protocol):
    """What a model backend offers the scorer: per-label probabilities for normalised texts."""

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Artifact:
    """A validated artifact folder."""

    path: Path
    info: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def thresholds(self) -> dict[str, Thresholds]:
        return {
            label: Thresholds(float(t["review"]), float(t["block"]))
            for label, t in self.info["thresholds"].items()
        }

    @property
    def lexicon_mode(self) -> str:
        return self.info.get("lexicon_mode", "max")

    def load_model(self) -> ProbabilityModel | None:
        """The model backend, imported lazily so a lexicon-only scorer needs neither."""
        if self.kind == "tfidf":
            from models.tfidf_model import TfidfClassifier

            return TfidfClassifier.load(self.path, self.info)
        if self.kind == "onnx":
            from models.onnx_model import OnnxClassifier

            return OnnxClassifier.load(self.path, self.info)
        if self.kind == "ensemble":
            from models.ensemble import EnsembleClassifier

            return EnsembleClassifier.load(self.path, self.info)
        return None


def resolve_model_path(model: str | Path | None) -> Path:
    """A shipped artifact name (``default``, ``baseline``, ``lexicon``) or a folder path."""
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and (ARTIFACTS_DIR / model / "artifact.json").is_file():
        return ARTIFACTS_DIR / model
    return Path(model)


def load_artifact(model: str | Path | None = None) -> Artifact:
    """Read and validate ``artifact.json``; raise `ArtifactError` naming what is missing."""
    path = resolve_model_path(model)
    meta_file = path / "artifact.json"
    if not meta_file.is_file():
        shipped = ", ".join(sorted(p.name for p in ARTIFACTS_DIR.iterdir() if p.is_dir()))
        raise ArtifactError(
            f"no artifact.json here; pass a model folder or one of the shipped names: {shipped}",
            path=path,
        )
    try:
        info = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"artifact.json is not valid JSON ({exc})", path=path) from None
    validate_info(info, path)
    return Artifact(path=path, info=info)


def validate_info(info: dict[str, Any], path: Path) -> None:
    """Refuse incomplete or inconsistent metadata with a message naming the problem."""
    missing = [key for key in REQUIRED_KEYS if key not in info]
    kind = info.get("kind")
    if kind is not None and kind not in KIND_KEYS:
        raise ArtifactError(f"unknown kind {kind!r}; expected one of {sorted(KIND_KEYS)}", path=path)
    missing += [key for key in KIND_KEYS.get(kind, ()) if key not in info]
    if missing:
        raise ArtifactError(f"artifact.json lacks {', '.join(missing)}", path=path)
    if list(info["labels"]) != [label.value for label in LABELS]:
        raise ArtifactError(
            f"labels {info['labels']} differ from this taxonomy's {[lab.value for lab in LABELS]}",
            path=path,
        )
    absent = [label for label in info["labels"] if label not in info["thresholds"]]
    if absent:
        raise ArtifactError(f"thresholds lack {', '.join(absent)}", path=path)
    for key in ("model_file", "tokenizer"):
        if key in info and not (path / info[key]).is_file():
            raise ArtifactError(f"{key} {info[key]!r} is missing from the folder", path=path)
    for member in info.get("members", []):
        if not (path / member.get("path", "") / "artifact.json").is_file():
            raise ArtifactError(f"ensemble member {member.get('path')!r} is missing", path=path)
    from models.normalize import NORMALIZER_VERSION

    # rules are normalised on load by the running normaliser; only a trained model can drift
    if info["kind"] != "lexicon" and info["normalizer_version"] != NORMALIZER_VERSION:
        warnings.warn(
            f"{path}: trained with normaliser {info['normalizer_version']}, "
            f"running {NORMALIZER_VERSION}; retrain or re-evaluate",
            stacklevel=3,
        )


def write_artifact_info(path: Path, info: dict[str, Any]) -> None:
    """Write ``artifact.json`` after validating it, so no incomplete artifact is ever saved."""
    validate_info(info, path)
    (path / "artifact.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
