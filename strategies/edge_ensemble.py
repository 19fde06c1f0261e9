"""Edge ensembles behind the strategy interface: K devices infer together over the air.

Device 0 is the inferring device and the receiver; devices 1..K-1 are its
neighbours, each holding its own member model and the same image. Every
device turns its member's logits into a payload (softmax outputs, or a
one-hot vote for its top class); each neighbour joins with probability
``link.connectivity`` and the neighbours that join superimpose their payloads
on one shared block (:func:`airinfer.ota.ensemble_over_the_air`, the path the
over-the-air experiments take too; ``local_device=True``: device 0's own
payload enters the average exactly, with the weight of one device). The
decision is the argmax of the estimated average.

Link: ``link.snr_db`` is the received Es/N0 per complex symbol in dB of one
neighbour at full power through a unit-average-gain channel (noise CN(0, no),
``no = 10**(-snr_db/10)``); ``link.channel`` is ``awgn``, ``rayleigh`` (flat
block fading) or ``tdl-a`` (OFDM, always Sionna), ``link.backend`` picks
Sionna or the JAX twin for the flat channels. Devices invert their channels
(truncated inversion by default: below ``threshold`` a device stays silent).

With connectivity 0 the output is device 0's own payload, exactly (local
inference); with one member likewise.

Example::

    strategy = EdgeEnsembleStrategy(ensemble)           # a models.ensemble.Ensemble
    outcome = jax.jit(strategy)(key, images, Link(snr_db=0.0, connectivity=0.5,
                                                  channel="rayleigh", backend="jax"))
"""

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer import ota
from airinfer.models.ensemble import Ensemble, MemberGroup
from airinfer.models.train import choose_formulation
from airinfer.models.zoo import SplitClassifier, flops
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Hardware, make_cost

__all__ = ["PAYLOADS", "EdgeEnsembleStrategy", "noiseless_average"]

#: What each device sends (names of :data:`airinfer.ota.PAYLOADS`): its softmax outputs (belief
#: sum) or a one-hot vote; sign votes are not offered here.
PAYLOADS = tuple(p for p in ota.PAYLOADS if p != "sign")


@dataclasses.dataclass(frozen=True, eq=False)
class _Group:
    """Members of one architecture: graph, stacked state ``[size, ...]``, how to run them."""

    graphdef: nnx.GraphDef
    state: nnx.State
    size: int
    vmapped: bool
    model: SplitClassifier  # member 0 of the group, for FLOP counts


def _groups(members):
    if isinstance(members, MemberGroup):
        members = Ensemble((members,))
    if isinstance(members, Ensemble):
        return tuple(
            _Group(
                g.graphdef,
                g.state,
                g.size,
                choose_formulation(g.config.kind, g.size) == "vmap",
                g.member(0),
            )  # fmt: skip
            for g in members.groups
        )
    if isinstance(members, Sequence) and not isinstance(members, str) and len(members) > 0:
        groups = []
        for i, model in enumerate(members):
            if not isinstance(model, SplitClassifier):
                raise ValueError(
                    f"members[{i}] must be a models.zoo.SplitClassifier, got {type(model).__name__}"
                )
            graphdef, state = nnx.split(model)
            stacked = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], state)
            groups.append(_Group(graphdef, stacked, 1, False, model))
        return tuple(groups)
    raise ValueError(
        "members must be a models.ensemble.Ensemble, a MemberGroup or a non-empty sequence of "
        f"SplitClassifier models, got {type(members).__name__}"
    )


def _group_logits(group, images):
    """``[size, B, C]`` inference-mode logits of the members of ``group``."""

    def apply(state, x):
        model = nnx.merge(group.graphdef, state)
        model.eval()
        return model(x)

    if group.vmapped:
        return jax.vmap(apply, in_axes=(0, None))(group.state, images)
    # One member after the other: on a CPU, XLA runs vmapped convolutions as
    # slow grouped convolutions (models.train.choose_formulation).
    return jnp.stack(
        [
            apply(jax.tree.map(lambda leaf, k=k: leaf[k], group.state), images)
            for k in range(group.size)
        ]
    )


def _check_connectivity(connectivity):
    if isinstance(connectivity, jax.core.Tracer):
        return  # traced under jit: nothing to check
    values = np.asarray(connectivity, np.float64)
    if np.any(np.isnan(values)) or np.any((values < 0) | (values > 1)):
        raise ValueError(f"link.connectivity must be in [0, 1], got {connectivity!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeEnsembleStrategy:
    """An over-the-air edge ensemble of K member models (``edge_ensemble``).

    Parameters:
        members: the K members: a :class:`airinfer.models.ensemble.Ensemble`, a
            :class:`airinfer.models.ensemble.MemberGroup` or a sequence of
            :class:`airinfer.models.zoo.SplitClassifier`; member 0 is the inferring device.
        payload: ``"softmax"`` (belief sum) or ``"vote"`` (one-hot majority vote).
        precoding: ``"truncated"`` (truncated channel inversion), ``"full"``
            or ``"phase"`` (see :mod:`airinfer.ota.precoding`); ignored on AWGN.
        threshold: > 0, truncated inversion's threshold on ``|h|^2``.
        repetitions: R >= 1, the block is sent R times and averaged.
        hardware: compute speeds and symbol rate behind the latency.

    Input (``__call__``):
        key: JAX PRNG key (participation, fading and noise derive from it).
        images: ``[B, H, W, C]`` float32, seen by every device.
        link: :class:`airinfer.strategies.base.Link` (SNR, connectivity, channel, backend).

    Output:
        :class:`airinfer.strategies.base.Outcome`: ``logits`` ``[B, num_classes]``
        float32 are the estimated average payload (scores, not
        log-probabilities: the decision is their argmax); the cost of one
        sample: ``R ceil(C / 2)`` channel uses shared by the neighbours (0 for
        K = 1), no payload bits (analog), device FLOPs of the costliest member
        (the devices compute in parallel), no server FLOPs.
    """

    members: object
    payload: str = "softmax"
    precoding: str = "truncated"
    threshold: float = 0.1
    repetitions: int = 1
    hardware: Hardware = Hardware()
    name: ClassVar[str] = "edge_ensemble"

    def __post_init__(self):
        if self.payload not in PAYLOADS:
            raise ValueError(f"payload must be one of {PAYLOADS}, got {self.payload!r}")
        if not isinstance(self.hardware, Hardware):
            raise ValueError(f"hardware must be a Hardware, got {type(self.hardware).__name__}")
        # AirCompConfig checks precoding, threshold and repetitions with named errors.
        ota.AirCompConfig(
            precoding=self.precoding, threshold=self.threshold, repetitions=self.repetitions
        )
        groups = _groups(self.members)
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "_flops", {})

    @property
    def num_members(self):
        """K, the number of devices."""
        return sum(g.size for g in self._groups)

    def air_config(self, link):
        """The :class:`airinfer.ota.AirCompConfig` used on ``link``."""
        return ota.AirCompConfig(
            channel=link.channel, precoding=self.precoding, threshold=self.threshold,
            repetitions=self.repetitions, local_device=True, backend=link.backend,
        )  # fmt: skip

    def member_logits(self, images):
        """``[K, B, C]`` float32 logits of every member (device) on ``images``."""
        outputs = [_group_logits(g, jnp.asarray(images, jnp.float32)) for g in self._groups]
        classes = {o.shape[-1] for o in outputs}
        if len(classes) > 1:
            raise ValueError(f"members disagree on the number of classes: {sorted(classes)}")
        return jnp.concatenate(outputs)

    def member_probs(self, images):
        """``[B, K, C]`` float32 softmax outputs of every member (device) on ``images``."""
        return jnp.moveaxis(jax.nn.softmax(self.member_logits(images), axis=-1), 0, 1)

    def payloads(self, images):
        """``[B, K, C]`` float32: what every device would send (softmax or one-hot vote)."""
        return ota.encode_payload(self.member_probs(images), self.payload)[0]

    def message(self, images, snr_db=None):
        """What a neighbour (device 1) sends: its payload, ``[B, C]`` float32; None when
        there is no neighbour (K = 1)."""
        if self.num_members == 1:
            return None
        return self.payloads(images)[:, 1]

    def cost(self, input_shape, num_classes):
        """The :class:`~airinfer.strategies.cost.Cost` of a sample of ``input_shape``, C classes."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._flops:
            self._flops[input_shape] = max(flops(g.model, input_shape) for g in self._groups)
        uses = 0
        if self.num_members > 1:
            uses = ota.channel_uses(
                ota.over_the_air_scheme(self.payload), num_classes, self.num_members - 1,
                repetitions=self.repetitions,
            )  # fmt: skip
        return make_cost(uses, 0, self._flops[input_shape], 0.0, self.hardware)

    def __call__(self, key, images, link):
        if jnp.ndim(images) != 4 or jnp.shape(images)[0] < 1:
            raise ValueError(
                f"images must have shape [B, H, W, C] with B >= 1, got {jnp.shape(images)}"
            )
        if not isinstance(link, Link):
            raise ValueError(f"link must be a strategies.base.Link, got {type(link).__name__}")
        _check_connectivity(link.connectivity)
        probs = self.member_probs(images)  # [B, K, C]
        num_classes = probs.shape[-1]
        key_join, key_air = jax.random.split(key)
        estimate = ota.ensemble_over_the_air(
            key_air, key_join, probs, link.snr_db, self.air_config(link), self.payload,
            link.connectivity,
        )  # fmt: skip
        return Outcome(estimate.average, self.cost(jnp.shape(images)[1:], num_classes))


def noiseless_average(strategy, images):
    """``[B, C]`` the exact average of all K devices' payloads (every device joined, no channel)."""
    return jnp.mean(strategy.payloads(images), axis=1)
