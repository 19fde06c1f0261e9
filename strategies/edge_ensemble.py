"""Edge ensembles behind the strategy interface: K devices infer together over the air.

Device 0 is the inferring device and the receiver; devices 1..K-1 are its
neighbours, each holding its own member model. An inference has up to two rounds:

1. The observation (``observation``, :mod:`airinfer.strategies.observation`):
   ``None`` (``shared``): every device already sees the same image;
   :class:`~airinfer.strategies.observation.DirectObservation` (``direct``):
   device 0 multicasts its image over a digital link and each neighbour
   infers on its own decoded copy; :class:`~airinfer.strategies.observation.SharedEncoder`
   (``encoder``): device 0 multicasts the features of a shared encoder and
   each neighbour runs its head (:mod:`airinfer.strategies.heads`) on what it
   received. Device 0 infers on its own clean input. A neighbour whose digital
   copy fails its CRC stays silent in round 2.
2. The return over the air: every device turns its member's logits into a
   payload (softmax outputs, or a one-hot vote for its top class); each
   neighbour joins with probability ``link.connectivity`` (and takes part only
   if it also got its copy: participation = joined AND delivered) and the
   neighbours that take part superimpose their payloads on one shared block
   (:func:`airinfer.ota.ensemble_over_the_air`, the path the over-the-air
   experiments take too; ``local_device=True``: device 0's own payload enters
   the average exactly, with the weight of one device). The decision is the
   argmax of the estimated average.

Link: ``link.snr_db`` is the received Es/N0 per complex symbol in dB of one
neighbour at full power through a unit-average-gain channel (noise CN(0, no),
``no = 10**(-snr_db/10)``), in both rounds; ``link.channel`` is ``awgn``,
``rayleigh`` (flat block fading) or ``tdl-a`` (OFDM, always Sionna; not for a
digital multicast), ``link.backend`` picks Sionna or the JAX twin for the flat
channels. Devices invert their channels (truncated inversion by default: below
``threshold`` a device stays silent). Each round draws its own fading.

Cost of one inference: both rounds' channel uses (one multicast copy, shared
by the neighbours, then ``R ceil(C / 2)`` over the air), the multicast's
payload bits, and on the devices the critical path: device 0's encoder, then
the slowest neighbour's work (its expander and member); the latency is that
path, one round after the other (:func:`airinfer.strategies.cost.latency_s`).

With connectivity 0 the output is device 0's own payload, exactly (local
inference); with one member likewise (and nothing is multicast).

Example::

    strategy = EdgeEnsembleStrategy(ensemble)           # a models.ensemble.Ensemble
    outcome = jax.jit(strategy)(key, images, Link(snr_db=0.0, connectivity=0.5,
                                                  channel="rayleigh", backend="jax"))
    direct = EdgeEnsembleStrategy(ensemble, observation=DirectObservation(ImageLink(pixels)))
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer import ota
from airinfer.models.ensemble import Ensemble, MemberGroup
from airinfer.models.inference import choose_formulation
from airinfer.models.zoo import SplitClassifier, flops
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Hardware, make_cost
from airinfer.strategies.observation import DirectObservation, Multicast, SharedEncoder

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


def _group_logits(group, inputs, per_member=False):
    """``[size, B, C]`` inference-mode logits of the members of ``group``.

    ``inputs``: ``[B, ...]`` seen by every member, or ``[size, B, ...]`` one per
    member (``per_member``).
    """

    def apply(state, x):
        model = nnx.merge(group.graphdef, state)
        model.eval()
        return model(x)

    if group.vmapped:
        return jax.vmap(apply, in_axes=(0, 0 if per_member else None))(group.state, inputs)
    # One member after the other: on a CPU, XLA runs vmapped convolutions as
    # slow grouped convolutions (models.inference.choose_formulation).
    return jnp.stack(
        [
            apply(
                jax.tree.map(lambda leaf, k=k: leaf[k], group.state),
                inputs[k] if per_member else inputs,
            )
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
    """An over-the-air edge ensemble of K member models, with its observation round.

    Named ``edge_ensemble``, ``edge_ensemble_direct`` or ``edge_ensemble_encoder``
    after its observation.

    Parameters:
        members: the K members: a :class:`airinfer.models.ensemble.Ensemble`, a
            :class:`airinfer.models.ensemble.MemberGroup` or a sequence of
            :class:`airinfer.models.zoo.SplitClassifier`; member 0 is the inferring
            device. With a :class:`SharedEncoder` they are heads taking its features.
        payload: ``"softmax"`` (belief sum) or ``"vote"`` (one-hot majority vote).
        precoding: ``"truncated"`` (truncated channel inversion), ``"full"``
            or ``"phase"`` (see :mod:`airinfer.ota.precoding`); ignored on AWGN.
        threshold: > 0, truncated inversion's threshold on ``|h|^2``.
        repetitions: R >= 1, the block is sent R times and averaged.
        hardware: compute speeds and symbol rate behind the latency.
        observation: the first round: None (``shared``), a
            :class:`~airinfer.strategies.observation.DirectObservation` or a
            :class:`~airinfer.strategies.observation.SharedEncoder`.

    Input (``__call__``):
        key: JAX PRNG key (multicast, participation, fading and noise derive from it).
        images: ``[B, H, W, C]`` float32, device 0's observation (every device's
            with ``shared``).
        link: :class:`airinfer.strategies.base.Link` (SNR, connectivity, channel,
            backend); a digital multicast takes a scalar SNR.

    Output:
        :class:`airinfer.strategies.base.Outcome`: ``logits`` ``[B, num_classes]``
        float32 are the estimated average payload (scores, not
        log-probabilities: the decision is their argmax); the cost of one
        sample (module docstring): with ``shared``, ``R ceil(C / 2)`` channel
        uses shared by the neighbours (0 for K = 1), no payload bits, the
        device FLOPs of the costliest member, no server FLOPs.
    """

    members: object
    payload: str = "softmax"
    precoding: str = "truncated"
    threshold: float = 0.1
    repetitions: int = 1
    hardware: Hardware = Hardware()
    observation: DirectObservation | SharedEncoder | None = None

    def __post_init__(self):
        if self.payload not in PAYLOADS:
            raise ValueError(f"payload must be one of {PAYLOADS}, got {self.payload!r}")
        if not isinstance(self.hardware, Hardware):
            raise ValueError(f"hardware must be a Hardware, got {type(self.hardware).__name__}")
        if self.observation is not None and not isinstance(
            self.observation, DirectObservation | SharedEncoder
        ):
            raise ValueError(
                "observation must be None (shared), a DirectObservation or a SharedEncoder, "
                f"got {type(self.observation).__name__}"
            )
        # AirCompConfig checks precoding, threshold and repetitions with named errors.
        ota.AirCompConfig(
            precoding=self.precoding, threshold=self.threshold, repetitions=self.repetitions
        )
        groups = _groups(self.members)
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "_flops", {})

    @property
    def name(self) -> str:
        """``edge_ensemble``, ``edge_ensemble_direct`` or ``edge_ensemble_encoder``."""
        return "edge_ensemble" + ("" if self.observation is None else f"_{self.observation.name}")

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

    def member_logits(self, inputs):
        """``[K, B, C]`` float32 logits of every member (device) on the same ``inputs``
        (images; with a :class:`SharedEncoder`, its features)."""
        return self._logits(jnp.asarray(inputs, jnp.float32), per_member=False)

    def _logits(self, inputs, per_member):
        outputs, start = [], 0
        for g in self._groups:
            mine = inputs[start : start + g.size] if per_member else inputs
            outputs.append(_group_logits(g, mine, per_member))
            start += g.size
        classes = {o.shape[-1] for o in outputs}
        if len(classes) > 1:
            raise ValueError(f"members disagree on the number of classes: {sorted(classes)}")
        return jnp.concatenate(outputs)

    def member_probs(self, inputs):
        """``[B, K, C]`` float32 softmax outputs of every member (device) on ``inputs``."""
        return jnp.moveaxis(jax.nn.softmax(self.member_logits(inputs), axis=-1), 0, 1)

    def clean_input(self, images):
        """What device 0's member sees: ``images``, or the shared encoder's clean features."""
        return images if self.observation is None else self.observation.own_input(images)

    def payloads(self, images):
        """``[B, K, C]`` float32: what every device would send (softmax or one-hot vote)
        if each had device 0's :meth:`clean_input`."""
        return ota.encode_payload(self.member_probs(self.clean_input(images)), self.payload)[0]

    def observed_probs(self, key, images, link):
        """Round 1: ``(probs [B, K, C], multicast)``, each device's softmax outputs on
        what it observed, and the :class:`Multicast` (None when nothing was sent)."""
        own = self.clean_input(images)
        if self.observation is None or self.num_members == 1:
            return self.member_probs(own), None
        multicast = self.observation.multicast(key, images, self.num_members - 1, link)
        inputs = jnp.concatenate([own[None], jnp.moveaxis(multicast.inputs, 1, 0)])
        logits = self._logits(inputs, per_member=True)
        return jnp.moveaxis(jax.nn.softmax(logits, axis=-1), 0, 1), multicast

    def message(self, images, snr_db=None):
        """What can be overheard: the multicast (``direct``: the image, ``encoder``: the
        features or symbols; see the observation's ``message``), or with ``shared`` a
        neighbour's (device 1's) payload ``[B, C]``; None when nothing is sent (K = 1)."""
        if self.num_members == 1:
            return None
        if self.observation is not None:
            return self.observation.message(images, snr_db)
        return self.payloads(images)[:, 1]

    def _member_flops(self, input_shape):
        """Largest FLOPs of one sample of a member that runs on a neighbour (or device 0's
        when K = 1)."""
        if input_shape not in self._flops:
            neighbours = [g for i, g in enumerate(self._groups) if i > 0 or g.size > 1]
            self._flops[input_shape] = max(
                flops(g.model, input_shape) for g in neighbours or self._groups
            )
        return self._flops[input_shape]

    def cost(self, input_shape, num_classes, multicast: Multicast | None = None):
        """The :class:`~airinfer.strategies.cost.Cost` of a sample of ``input_shape``, C classes.

        ``multicast`` supplies round 1's channel uses and bits where they depend on the
        images (a codec stream); fixed-size payloads need none.
        """
        input_shape = tuple(int(d) for d in input_shape)
        observation = self.observation
        if observation is None:
            device = self._member_flops(input_shape)
        else:
            member = self._member_flops(tuple(observation.input_shape(input_shape)))
            device = observation.encoder_flops(input_shape) + member
        if self.num_members == 1:
            return make_cost(0, 0, device, 0.0, self.hardware)
        uses = ota.channel_uses(
            ota.over_the_air_scheme(self.payload), num_classes, self.num_members - 1,
            repetitions=self.repetitions,
        )  # fmt: skip
        bits = 0
        if observation is not None:
            sent_uses, bits = observation.sent(input_shape, multicast)
            uses = uses + sent_uses
            device = device + observation.receiver_flops(input_shape)
        return make_cost(uses, bits, device, 0.0, self.hardware)

    def __call__(self, key, images, link):
        if jnp.ndim(images) != 4 or jnp.shape(images)[0] < 1:
            raise ValueError(
                f"images must have shape [B, H, W, C] with B >= 1, got {jnp.shape(images)}"
            )
        if not isinstance(link, Link):
            raise ValueError(f"link must be a strategies.base.Link, got {type(link).__name__}")
        _check_connectivity(link.connectivity)
        images = jnp.asarray(images, jnp.float32)
        key_join, key_air = jax.random.split(key)
        probs, multicast = self.observed_probs(jax.random.fold_in(key, 1), images, link)
        num_classes = probs.shape[-1]
        if multicast is None:
            estimate = ota.ensemble_over_the_air(
                key_air, key_join, probs, link.snr_db, self.air_config(link), self.payload,
                link.connectivity,
            )  # fmt: skip
        else:
            estimate = self._over_the_air(key_join, key_air, probs, link, multicast.delivered)
        return Outcome(estimate.average, self.cost(images.shape[1:], num_classes, multicast))

    def _over_the_air(self, key_join, key_air, probs, link, delivered):
        """:func:`airinfer.ota.ensemble_over_the_air` with the neighbours that did not get
        their copy (``delivered`` ``[B, K - 1]`` False) silent."""
        values, normalization = ota.encode_payload(probs, self.payload)
        joined = ota.participation_mask(
            key_join, values.shape[:-2], values.shape[-2], link.connectivity
        )
        joined = joined.at[..., 1:].multiply(delivered.astype(joined.dtype))
        return ota.over_the_air_average(
            key_air, values, link.snr_db, self.air_config(link), normalization, joined
        )


def noiseless_average(strategy, images):
    """``[B, C]`` the exact average of all K devices' payloads on device 0's clean input
    (every device joined, every copy intact, no channel)."""
    return jnp.mean(strategy.payloads(images), axis=1)
