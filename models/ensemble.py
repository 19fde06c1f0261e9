"""Ensembles of K classifiers, stored as stacked parameters per architecture.

Members that share one :class:`~airinfer.models.zoo.ModelConfig` form a
:class:`MemberGroup`: one NNX graph definition and one state whose every leaf
has a leading member axis ``[K_g, ...]``. An :class:`Ensemble` is a sequence of
groups (one for a homogeneous ensemble; one per width when the members differ
in width), members numbered group by group.

Diversity kinds (:data:`DIVERSITY_KINDS`, see :class:`EnsembleConfig`):

* ``init``: same data, different random initialisation.
* ``bagging``: each member trains on its own bootstrap sample.
* ``shards``: each member trains on its own disjoint shard (one per device).
* ``widths``: members of different widths (several groups).
* ``architectures``: members of different model kinds and widths.
* ``distillation``: members learn from a larger teacher's softened outputs.
* ``quantization``: one model is trained; member k is an independent
  stochastic rounding of its weights to ``b`` bits.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.models.zoo import ModelConfig, SplitClassifier, abstract_model, build_model

__all__ = [
    "DIVERSITY_KINDS",
    "EnsembleConfig",
    "MemberGroup",
    "Ensemble",
    "init_group",
    "stack_models",
    "stochastic_quantize",
    "ensemble_metrics",
]

DIVERSITY_KINDS = (
    "init",
    "bagging",
    "shards",
    "widths",
    "architectures",
    "distillation",
    "quantization",
)


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """An ensemble to train.

    Attributes:
        model: the members' architecture (for ``widths``, its width is the middle one).
        members: number of members K >= 1.
        diversity: one of :data:`DIVERSITY_KINDS`.
        widths: for ``widths``: the widths, members split into contiguous equal
            blocks over them; empty means ``(width/2, width, 2·width)``.
        architectures: for ``architectures``: ``(kind, width)`` pairs, members
            split into contiguous equal blocks over them; empty means the
            model's own and the other of ``cnn``/``mlp`` at the same width.
        teacher_width: for ``distillation``: the teacher's width multiplier.
        distillation_temperature: softmax temperature T of the teacher and student.
        distillation_weight: weight of the soft-target loss (the hard-label
            cross-entropy gets ``1 - weight``); the soft loss is scaled by T².
        quantization_bits: for ``quantization``: bits per weight b (2..16).
    """

    model: ModelConfig = ModelConfig()
    members: int = 4
    diversity: str = "bagging"
    widths: tuple[float, ...] = ()
    architectures: tuple[tuple[str, float], ...] = ()
    teacher_width: float = 1.0
    distillation_temperature: float = 4.0
    distillation_weight: float = 0.7
    quantization_bits: int = 4

    def __post_init__(self):
        if self.diversity not in DIVERSITY_KINDS:
            raise ValueError(
                f"diversity: unknown {self.diversity!r}; allowed: {', '.join(DIVERSITY_KINDS)}"
            )
        if not (isinstance(self.members, int) and self.members >= 1):
            raise ValueError(f"members: {self.members!r} is not an int >= 1")
        if not 2 <= self.quantization_bits <= 16:
            raise ValueError(f"quantization_bits: {self.quantization_bits} is not in [2, 16]")
        if not 0.0 <= self.distillation_weight <= 1.0:
            raise ValueError(f"distillation_weight: {self.distillation_weight} is not in [0, 1]")
        object.__setattr__(self, "widths", tuple(float(w) for w in self.widths))
        object.__setattr__(
            self, "architectures", tuple((str(k), float(w)) for k, w in self.architectures)
        )
        for kind, width in self.architectures:  # fails early, naming the bad entry
            dataclasses.replace(self.model, kind=kind, width=width)

    def member_configs(self) -> tuple[ModelConfig, ...]:
        """The architecture of each member, in member order."""
        width = self.model.width
        if self.diversity == "widths":
            widths = self.widths or tuple(min(4.0, w) for w in (width / 2, width, 2 * width))
            choices = [dataclasses.replace(self.model, width=w) for w in widths]
        elif self.diversity == "architectures":
            other = "mlp" if self.model.kind != "mlp" else "cnn"
            pairs = self.architectures or ((self.model.kind, width), (other, width))
            choices = [dataclasses.replace(self.model, kind=k, width=w) for k, w in pairs]
        else:
            return (self.model,) * self.members
        # contiguous blocks, so that each architecture is one stacked group
        return tuple(choices[k * len(choices) // self.members] for k in range(self.members))

    def to_dict(self) -> dict:
        """A JSON-ready dict (the model config nested)."""
        return dataclasses.asdict(self) | {
            "model": self.model.to_dict(),
            "widths": list(self.widths),
            "architectures": [list(pair) for pair in self.architectures],
        }


@dataclasses.dataclass
class MemberGroup:
    """Members of one architecture with stacked state.

    Attributes:
        config: the shared architecture.
        graphdef: NNX graph definition of one member.
        state: ``nnx.State`` (parameters and BatchNorm statistics), every leaf
            ``[size, ...]``.
    """

    config: ModelConfig
    graphdef: nnx.GraphDef
    state: nnx.State

    @property
    def size(self) -> int:
        """Number of members in the group."""
        return int(jax.tree.leaves(self.state)[0].shape[0])

    def member_state(self, index: int) -> nnx.State:
        """The unstacked state of member ``index``."""
        return jax.tree.map(lambda leaf: leaf[index], self.state)

    def member(self, index: int) -> SplitClassifier:
        """Member ``index`` as a stand-alone NNX model (a copy)."""
        return nnx.merge(self.graphdef, self.member_state(index))


@dataclasses.dataclass
class Ensemble:
    """K members in groups of equal architecture; members numbered group by group."""

    groups: tuple[MemberGroup, ...]

    @property
    def size(self) -> int:
        """Number of members K."""
        return sum(group.size for group in self.groups)

    @property
    def member_configs(self) -> tuple[ModelConfig, ...]:
        """The architecture of each member, in member order."""
        return tuple(config for group in self.groups for config in [group.config] * group.size)

    def member(self, index: int) -> SplitClassifier:
        """Member ``index`` (0-based, over all groups) as a stand-alone model."""
        if not 0 <= index < self.size:
            raise IndexError(f"member {index} of an ensemble of {self.size}")
        for group in self.groups:
            if index < group.size:
                return group.member(index)
            index -= group.size
        raise AssertionError("unreachable")


def init_group(config: ModelConfig, keys) -> MemberGroup:
    """Initialise ``len(keys)`` members of architecture ``config``, one per key.

    Member ``k`` is initialised as ``build_model(config, keys[k])`` (bit for
    bit on CPU; on a GPU the jitted and the eager draw may differ by float
    rounding), by one jitted initialiser compiled once and called per member.

    Args:
        config: the architecture.
        keys: ``[K]`` ``jax.random`` keys.
    """
    graphdef = nnx.graphdef(abstract_model(config))
    initialise = jax.jit(lambda key: nnx.state(build_model(config, key)))
    states = [initialise(key) for key in keys]
    return MemberGroup(config, graphdef, jax.tree.map(lambda *leaves: jnp.stack(leaves), *states))


def stack_models(config: ModelConfig, models) -> MemberGroup:
    """Stack trained models of one architecture into a :class:`MemberGroup`."""
    graphdef, _ = nnx.split(models[0])
    states = [nnx.state(model) for model in models]
    return MemberGroup(config, graphdef, jax.tree.map(lambda *leaves: jnp.stack(leaves), *states))


def stochastic_quantize(key, params, bits: int):
    """Quantise weight tensors to ``bits`` bits with stochastic rounding.

    Each weight tensor (``ndim >= 2``; biases and norm parameters stay as they
    are) gets a symmetric uniform grid with step ``max|w| / (2^(bits-1) - 1)``
    and each weight is rounded to a grid neighbour at random, up with
    probability equal to its distance from the lower neighbour; the rounding is
    therefore unbiased (E[q(w)] = w) and each key gives another realisation.

    Args:
        key: ``jax.random`` key.
        params: a pytree of arrays (e.g. an ``nnx.State``).
        bits: bits per weight, >= 2.

    Returns:
        The pytree with quantised weights, same structure and dtypes.
    """
    levels = 2 ** (bits - 1) - 1
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))

    def quantize(leaf, leaf_key):
        if leaf.ndim < 2:
            return leaf
        step = jnp.maximum(jnp.max(jnp.abs(leaf)), 1e-12) / levels
        scaled = leaf / step
        noise = jax.random.uniform(leaf_key, leaf.shape, leaf.dtype)
        return (jnp.clip(jnp.floor(scaled + noise), -levels, levels) * step).astype(leaf.dtype)

    return jax.tree.unflatten(
        treedef, [quantize(leaf, k) for leaf, k in zip(leaves, keys, strict=True)]
    )


def ensemble_metrics(logits, labels) -> dict:
    """Accuracies of the members and of two aggregation rules.

    Args:
        logits: ``[K, N, C]`` member logits.
        labels: ``[N]`` int labels.

    Returns:
        ``member_accuracy`` (list of K), ``mean_member_accuracy``,
        ``ensemble_accuracy`` (argmax of the average of the members' softmax
        outputs) and ``majority_vote_accuracy`` (most frequent member argmax;
        ties go to the lowest class index), all fractions in [0, 1].
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    member_predictions = logits.argmax(-1)  # [K, N]
    member_accuracy = (member_predictions == labels).mean(axis=1)
    shifted = logits - logits.max(-1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    votes = np.zeros(logits.shape[1:], np.int64)  # [N, C]
    np.add.at(votes, (np.arange(logits.shape[1])[None, :], member_predictions), 1)
    return {
        "member_accuracy": [float(a) for a in member_accuracy],
        "mean_member_accuracy": float(member_accuracy.mean()),
        "ensemble_accuracy": float((probabilities.mean(0).argmax(-1) == labels).mean()),
        "majority_vote_accuracy": float((votes.argmax(-1) == labels).mean()),
    }
