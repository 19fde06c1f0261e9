"""The hybrid of an edge ensemble and a server (the survey's §V-B2).

The inferring device (device 0) runs two branches at once, each over its own
links with its own draws:

* the edge ensemble (:class:`~airinfer.strategies.edge_ensemble.EdgeEnsembleStrategy`,
  any observation scheme): its neighbours' payloads come back over the air
  and average with device 0's own;
* the server (:class:`~airinfer.strategies.cloud.CloudStrategy` or
  :class:`~airinfer.strategies.split_digital.SplitDigitalStrategy`) over its own
  digital uplink. The server is reachable for an inference with probability
  ``link.server_connectivity`` (:class:`~airinfer.strategies.base.Link`, traced);
  its answer counts only when it is reachable and its uplink decoded (the
  ideal CRC's verdict, ``intact``).

Fusion: where the server's answer counts, the device decides on
``trust * softmax(server logits) + (1 - trust) * ensemble average`` (both on the
probability simplex; ``trust`` = 1 takes the server's alone, 0 the ensemble's);
elsewhere on the ensemble's average alone. With server connectivity 0 the
hybrid is its ensemble exactly (same key); with a server that always decodes
and ``trust = 1``, the server.

Cost of one inference: both branches' channel uses, payload bits and server
FLOPs; on the devices and in latency the slower branch (they run side by side
on separate links).

Example::

    hybrid = HybridStrategy(EdgeEnsembleStrategy(ensemble), CloudStrategy(server, pixels))
    outcome = jax.jit(hybrid)(key, images, Link(snr_db=5.0, channel="rayleigh",
                                                server_connectivity=0.5))
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cloud import CloudStrategy
from airinfer.strategies.cost import Cost
from airinfer.strategies.edge_ensemble import EdgeEnsembleStrategy
from airinfer.strategies.split_digital import SplitDigitalStrategy

__all__ = ["HybridBranches", "HybridStrategy"]


class HybridBranches(NamedTuple):
    """The two branches of one hybrid inference, before fusion.

    Attributes:
        ensemble: the ensemble's :class:`~airinfer.strategies.base.Outcome` (``logits``
            ``[B, C]``: its estimated average payload).
        server: the server's :class:`~airinfer.strategies.base.Outcome` (``logits`` ``[B, C]``).
        server_ok: ``[B]`` bool, the server was reachable and its uplink decoded.
    """

    ensemble: Outcome
    server: Outcome
    server_ok: jax.Array


def _check_probability(name, value):
    if isinstance(value, jax.core.Tracer):
        return  # traced under jit: nothing to check
    values = np.asarray(value, np.float64)
    if np.any(np.isnan(values)) or np.any((values < 0) | (values > 1)):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class HybridStrategy:
    """An edge ensemble fused with a server's answer when the server's link delivers.

    Parameters:
        ensemble: the :class:`~airinfer.strategies.edge_ensemble.EdgeEnsembleStrategy`.
        server: a :class:`~airinfer.strategies.cloud.CloudStrategy` or
            :class:`~airinfer.strategies.split_digital.SplitDigitalStrategy`.
        trust: weight in [0, 1] of the server's softmax in the fusion.

    Input (``__call__``):
        key: JAX PRNG key; the ensemble gets it as it is, the server's uplink
            ``fold_in(key, 2)``, the server's reachability ``fold_in(key, 3)``.
        images: ``[B, H, W, C]`` float32, device 0's observation.
        link: :class:`~airinfer.strategies.base.Link`: ``snr_db`` and ``channel``
            of every link (a digital uplink: ``awgn`` or ``rayleigh``, scalar
            SNR), ``connectivity`` of the neighbours, ``server_connectivity``.

    Output:
        :class:`~airinfer.strategies.base.Outcome`: ``logits`` ``[B, C]`` float32,
        the fused probabilities (the decision is their argmax), and the cost of
        one inference (module docstring).
    """

    ensemble: EdgeEnsembleStrategy
    server: CloudStrategy | SplitDigitalStrategy
    trust: float = 0.5
    name = "hybrid"

    def __post_init__(self):
        if not isinstance(self.ensemble, EdgeEnsembleStrategy):
            raise ValueError(
                f"ensemble: {type(self.ensemble).__name__} is not an EdgeEnsembleStrategy"
            )
        if not isinstance(self.server, CloudStrategy | SplitDigitalStrategy):
            raise ValueError(
                f"server: {type(self.server).__name__} is not a CloudStrategy or a "
                "SplitDigitalStrategy"
            )
        if isinstance(self.trust, bool) or not isinstance(self.trust, int | float):
            raise ValueError(f"trust: {self.trust!r} is not a number in [0, 1]")
        if not 0 <= self.trust <= 1:
            raise ValueError(f"trust: {self.trust!r} is not in [0, 1]")

    def branches(self, key, images, link: Link) -> HybridBranches:
        """Run both branches: a :class:`HybridBranches`."""
        if not isinstance(link, Link):
            raise ValueError(f"link must be a strategies.base.Link, got {type(link).__name__}")
        _check_probability("link.server_connectivity", link.server_connectivity)
        ensemble = self.ensemble(key, images, link)
        server, intact = self.server.outcome_with_crc(jax.random.fold_in(key, 2), images, link)
        draws = jax.random.uniform(jax.random.fold_in(key, 3), intact.shape)
        # uniform draws lie in [0, 1): connectivity 0 never reaches the server, 1 always
        reachable = draws < jnp.asarray(link.server_connectivity, jnp.float32)
        return HybridBranches(ensemble, server, reachable & intact)

    def fuse(self, branches: HybridBranches):
        """``[B, C]`` float32: the fused probabilities where the server's answer counts,
        the ensemble's average elsewhere."""
        average = branches.ensemble.logits
        fused = self.trust * jax.nn.softmax(branches.server.logits, axis=-1)
        fused = fused + (1.0 - self.trust) * average
        return jnp.where(branches.server_ok[:, None], fused, average)

    def cost(self, ensemble: Cost, server: Cost) -> Cost:
        """The :class:`~airinfer.strategies.cost.Cost` of both branches side by side."""
        return Cost(
            ensemble.channel_uses + server.channel_uses,
            ensemble.payload_bits + server.payload_bits,
            jnp.maximum(ensemble.device_flops, server.device_flops),
            server.server_flops,
            jnp.maximum(ensemble.latency_s, server.latency_s),
        )

    def message(self, images, snr_db=None):
        """What can be overheard: the ensemble's and the server uplink's messages, each
        flattened, side by side, ``[B, M]`` float32 (None when neither sends anything)."""
        parts = [
            message.reshape(message.shape[0], -1)
            for message in (
                self.ensemble.message(images, snr_db),
                self.server.message(images, snr_db),
            )
            if message is not None
        ]
        return jnp.concatenate(parts, axis=-1) if parts else None

    def __call__(self, key, images, link: Link) -> Outcome:
        branches = self.branches(key, images, link)
        cost = self.cost(branches.ensemble.cost, branches.server.cost)
        return Outcome(self.fuse(branches), cost)
