"""The stages' results as plain numpy types, and the loaders that read them from an artifact.

The stages (pipeline.stages) build these artifacts with a model; everything downstream (the rows,
the criteria, the figures) reads them through the loaders here, without torch: an artifact's
files are safetensors read with `safetensors.numpy`, JSON and JSONL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from pipeline.inputs.artifacts import Artifact
from pipeline.inputs.experiment import CONTROL
from pipeline.inputs.shards import read_records
from pipeline.inputs.stimuli import Activity, load_activities
from pipeline.measures.preference_analysis import columnwise_pearson
from pipeline.measures.vectors import NeutralPCA, empty_emotions

# ---------------------------------------------------------------------------------------------
# Extraction: stories and emotion vectors


def load_items(artifact: Artifact) -> list[dict[str, Any]]:
    return list(read_records(artifact.path, "items"))


@dataclass(frozen=True)
class EmotionVectors:
    """Vectors of every layer: raw and denoised [L, E, d], plus what steering and V-rows need."""

    emotions: tuple[str, ...]
    raw: np.ndarray
    denoised: np.ndarray
    mean_norms: np.ndarray  # [L] mean residual norm over neutral non-special tokens
    pcs: tuple[NeutralPCA, ...]
    counts: np.ndarray  # [E] stories behind each vector
    key: str

    def index(self, emotion: str) -> int:
        try:
            return self.emotions.index(emotion)
        except ValueError:
            raise KeyError(f"{emotion!r} is not one of the {len(self.emotions)} emotions") from None

    def at(self, layer: int, *, denoised: bool = True) -> np.ndarray:
        """[E, d] at one layer."""
        return (self.denoised if denoised else self.raw)[layer]

    @cached_property
    def n_layers(self) -> int:
        return self.raw.shape[0]

    @cached_property
    def missing(self) -> tuple[str, ...]:
        """Emotions with no usable story: their vectors are NaN and every row leaves them out."""
        return tuple(empty_emotions(self.counts, self.emotions))

    def present(self, names) -> list[str]:
        """`names` without the emotions that have no vector, order kept."""
        return [n for n in names if n not in self.missing]

    def coverage_note(self, names=None) -> str:
        """'' when every emotion (of `names`, default all) has a vector, else a sentence."""
        names = self.emotions if names is None else tuple(names)
        gone = [n for n in names if n in self.missing]
        if not gone:
            return ""
        return (f"computed over {len(names) - len(gone)} of {len(names)} emotions: no usable "
                f"story (none of 50+ tokens) for {', '.join(gone)}")


def load_vectors(artifact: Artifact) -> EmotionVectors:
    from safetensors.numpy import load_file

    tensors = load_file(str(artifact.file("vectors.safetensors")))
    ks = tensors["pcs_k"]
    pcs = tuple(
        NeutralPCA(tensors["pcs"][i, : ks[i]].astype(np.float64),
                   tensors["pcs_explained"][i, : ks[i]].astype(np.float64))
        for i in range(len(ks))
    )
    return EmotionVectors(
        emotions=tuple(json.loads(artifact.file("emotions.json").read_text())),
        raw=tensors["raw"].astype(np.float64),
        denoised=tensors["denoised"].astype(np.float64),
        mean_norms=tensors["mean_norms"].astype(np.float64),
        pcs=pcs,
        counts=tensors["counts"],
        key=artifact.key,
    )


@dataclass(frozen=True)
class BaselinePreferences:
    activities: tuple[Activity, ...]
    logit_diff: np.ndarray  # [N, N] logit(A) - logit(B), row = A, column = B, NaN diagonal
    ratings: np.ndarray  # [N] position-aware Bradley-Terry, Elo scale, mean 1500
    elo_mean: np.ndarray  # [N] iterative Elo, mean over seeds
    elo_sd: np.ndarray  # [N] sd over seeds
    choice_tokens: dict[str, Any]
    key: str
    order_averaged: np.ndarray  # [N] Bradley-Terry on order-averaged soft wins (secondary)
    position_bias: float  # fitted first-option advantage, log-odds

    @property
    def categories(self) -> list[str]:
        return [a.category for a in self.activities]


def stored_activities(artifact: Artifact) -> tuple[Activity, ...]:
    """The activities an artifact was built over: all of Table 9's, or the subset its key names
    (a reduced scale's first k of each category)."""
    subset = artifact.provenance["inputs"].get("activities_subset")
    activities = load_activities()
    if subset is None:
        return activities
    ranks = set(subset["ranks"])
    return tuple(a for a in activities if a.rank in ranks)


def load_preferences(artifact: Artifact) -> BaselinePreferences:
    from safetensors.numpy import load_file

    tensors = load_file(str(artifact.file("preferences.safetensors")))
    return BaselinePreferences(
        activities=stored_activities(artifact),
        logit_diff=tensors["logit_diff"], ratings=tensors["bradley_terry"],
        elo_mean=tensors["elo_mean"], elo_sd=tensors["elo_sd"],
        choice_tokens=json.loads(artifact.file("choice_tokens.json").read_text()),
        key=artifact.key, order_averaged=tensors["bradley_terry_order_averaged"],
        position_bias=float(tensors["position_bias"][0]),
    )


@dataclass(frozen=True)
class ActivityProbes:
    emotions: tuple[str, ...]
    layers: tuple[int, ...]
    per_layer: np.ndarray  # [N, L, E] cosine
    key: str

    @property
    def values(self) -> np.ndarray:
        """[N, E]: the cosine averaged over the probe layers."""
        return self.per_layer.mean(axis=1)

    def only(self, layer: int) -> ActivityProbes:
        """The probes at one captured layer, as if that were the only probe layer.

        The key names the slice, so a steered stage keyed on it differs from one keyed on the
        whole multi-layer artifact; a one-layer artifact sliced at its layer keeps its key.
        """
        if layer not in self.layers:
            raise ValueError(
                f"activity probes hold layers {list(self.layers)}, not {layer}; build the "
                "activity_probes stage with that layer in `layers`"
            )
        if self.layers == (layer,):
            return self
        i = self.layers.index(layer)
        return ActivityProbes(self.emotions, (layer,), self.per_layer[:, i:i + 1],
                              f"{self.key}@{layer}")


def load_activity_probes(artifact: Artifact) -> ActivityProbes:
    from safetensors.numpy import load_file

    cosine = load_file(str(artifact.file("activity_probes.safetensors")))["cosine"]
    return ActivityProbes(
        emotions=tuple(json.loads(artifact.file("emotions.json").read_text())),
        layers=tuple(artifact.provenance["inputs"]["layers"]),
        per_layer=cosine, key=artifact.key,
    )


def preference_correlations(probes: ActivityProbes, baseline: BaselinePreferences) -> np.ndarray:
    """r per emotion [E]: Pearson over activities of probe value against BT rating."""
    return columnwise_pearson(probes.values, baseline.ratings)


@dataclass(frozen=True)
class SteeringResults:
    conditions: tuple[str, ...]  # steered emotions, then CONTROL
    steered: tuple[int, ...]  # activity indices of the steered split
    logit_diff: np.ndarray  # [C, N, N]
    ratings: np.ndarray  # [C, N] Bradley-Terry
    baseline_ratings: np.ndarray  # [N] the unsteered ratings from the same batches
    strength: float
    layers: tuple[int, ...]
    key: str

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(c for c in self.conditions if c != CONTROL)

    def index(self, condition: str) -> int:
        return self.conditions.index(condition)


def load_steering(artifact: Artifact) -> SteeringResults:
    from safetensors.numpy import load_file

    conditions = json.loads(artifact.file("conditions.json").read_text())
    diffs, ratings = [], []
    for k in range(len(conditions)):
        tensors = load_file(str(artifact.file(f"conditions/{k:03d}.safetensors")))
        diffs.append(tensors["logit_diff"])
        ratings.append(tensors["bradley_terry"])
    inputs = artifact.provenance["inputs"]
    baseline = load_file(str(artifact.file("baseline.safetensors")))
    return SteeringResults(
        conditions=tuple(conditions), steered=tuple(inputs["split"]["steered"]),
        logit_diff=np.stack(diffs), ratings=np.stack(ratings),
        baseline_ratings=baseline["bradley_terry"],
        strength=float(inputs["strength"]), layers=tuple(inputs["layers"]), key=artifact.key,
    )


@dataclass(frozen=True)
class Readouts:
    activations: dict[str, np.ndarray]  # set name -> [N, L, d]
    ids: dict[str, tuple[str, ...]]
    read_tokens: dict[str, tuple[str, ...]]


def load_readouts(artifact: Artifact) -> Readouts:
    from safetensors.numpy import load_file

    tensors = load_file(str(artifact.file("readouts.safetensors")))
    index = json.loads(artifact.file("index.json").read_text())
    return Readouts(
        {k: v.astype(np.float64) for k, v in tensors.items()},
        {k: tuple(v["ids"]) for k, v in index.items()},
        {k: tuple(v["read_tokens"]) for k, v in index.items()},
    )


def load_logit_lens(artifact: Artifact) -> dict[str, Any]:
    return json.loads(artifact.file("logit_lens.json").read_text())


@dataclass(frozen=True)
class MirroringReadouts:
    titles: tuple[str, ...]
    layer: int  # the registry's analysis layer when captured, else the first captured layer
    activations: np.ndarray  # [8, len(POSITIONS), d] at `layer`; response row NaN if empty
    continuations: tuple[str, ...]
    positions: tuple[dict[str, int], ...]  # token index of each readout per prompt
    layers: tuple[int, ...] = ()  # every captured layer, in the order of `per_layer`
    per_layer: np.ndarray | None = None  # [8, len(POSITIONS), len(layers), d]

    def at(self, layer: int) -> np.ndarray:
        """[8, len(POSITIONS), d] at one captured layer."""
        if layer not in self.layers:
            raise ValueError(
                f"mirroring readouts hold layers {list(self.layers)}, not {layer}; build the "
                "mirroring stage with that layer in `layers`"
            )
        return self.per_layer[:, :, self.layers.index(layer)]


def load_mirroring(artifact: Artifact) -> MirroringReadouts:
    meta = json.loads(artifact.file("readouts.json").read_text(encoding="utf-8"))
    layer = int(meta["layer"])
    layers = tuple(meta.get("layers", [layer]))  # artifacts from before the sweep: one layer
    acts = np.load(artifact.file("activations.npy"))
    per_layer = acts[:, :, None] if acts.ndim == 3 else acts  # [8, P, L, d]
    return MirroringReadouts(
        titles=tuple(meta["titles"]),
        layer=layer,
        activations=per_layer[:, :, layers.index(layer)],
        continuations=tuple(meta["continuations"]),
        positions=tuple(meta["positions"]),
        layers=layers,
        per_layer=per_layer,
    )


def load_rollouts(artifact: Artifact) -> list[dict[str, Any]]:
    return list(read_records(artifact.path, "rollouts"))


def load_judgments(artifact: Artifact) -> list[dict[str, Any]]:
    return list(read_records(artifact.path, "judgments"))


# ---------------------------------------------------------------------------------------------
# The embedding null (issue 16): the rows' inputs at the token embeddings, before any block


@dataclass(frozen=True)
class EmbeddingNull:
    """What the embedding_null stage stores: one-layer vectors (layer 0 = the token
    embeddings), the logit lens of them, the implicit scenarios' embeddings and the
    activity-probe cosines, each in the format its real stage uses."""

    vectors: EmotionVectors  # [1, E, d]
    logit_lens: dict[str, Any]  # load_logit_lens's format, one layer
    # "implicit": [N, 1, d], the mean embedding of each scenario's user-message tokens (the
    # read position's embedding is the same template token for all, kept as "implicit_read")
    readouts: Readouts
    probe_values: np.ndarray  # [N activities, E]
    block0_difference: float  # the lookup against block 0's input, max relative difference


def load_embedding_null(artifact: Artifact) -> EmbeddingNull:
    from safetensors.numpy import load_file

    cosine = load_file(str(artifact.file("activity_probes.safetensors")))["cosine"]
    return EmbeddingNull(
        vectors=load_vectors(artifact), logit_lens=load_logit_lens(artifact),
        readouts=load_readouts(artifact), probe_values=cosine.astype(np.float64).mean(axis=1),
        block0_difference=float(artifact.provenance["result"]["block0_difference"]))


@dataclass(frozen=True)
class CoherenceNLLs:
    """The held-out neutral texts' mean NLL (nats/token), unsteered and per steered condition
    (the preference stage's conditions, or the blackmail cells' ids)."""

    conditions: tuple[str, ...]
    strengths: tuple[float, ...]  # per condition
    texts: tuple[str, ...]  # the texts' ids
    unsteered: np.ndarray  # [T]
    steered: np.ndarray  # [C, T]
    key: str
    vocab_size: int = 0  # the model's output vocabulary: uniform guessing is ln(vocab_size)

    @property
    def unsteered_perplexity(self) -> float:
        """exp(mean unsteered NLL over texts)."""
        return float(np.exp(np.mean(self.unsteered)))

    @property
    def at_chance(self) -> bool:
        """The unsteered model predicts the texts no better than guessing among half its
        vocabulary (random weights, or a toy trained on other text): no steer can then show
        damage, so the ratio says nothing either way."""
        return bool(self.vocab_size) and self.unsteered_perplexity >= self.vocab_size / 2

    def present(self, names) -> list[str]:
        """`names` that were steered here, order kept."""
        return [n for n in names if n in self.conditions]

    def rows(self, names) -> np.ndarray:
        """[len(names), T] steered NLLs of those conditions."""
        return self.steered[[self.conditions.index(n) for n in names]]


def load_coherence(artifact: Artifact) -> CoherenceNLLs:
    from safetensors.numpy import load_file

    tensors = load_file(str(artifact.file("nll.safetensors")))
    meta = json.loads(artifact.file("conditions.json").read_text())
    return CoherenceNLLs(
        conditions=tuple(meta["conditions"]), strengths=tuple(meta["strengths"]),
        texts=tuple(meta["texts"]), unsteered=tensors["unsteered"].astype(np.float64),
        steered=tensors["steered"].astype(np.float64).reshape(len(meta["conditions"]),
                                                              len(meta["texts"])),
        key=artifact.key, vocab_size=int(meta.get("vocab_size", 0)),
    )
