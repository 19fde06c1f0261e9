"""Computation partitioning of one model across devices, each hop a digital link.

Two ways to share the work of one :class:`airinfer.models.zoo.SplitClassifier`:

* :class:`LayerPartitionStrategy` (``partition_layer``), layer-wise: a chain of
  D devices. Device 1 holds the image and runs the first stages, quantises its
  activations and sends them over a digital hop (:mod:`airinfer.strategies.digital_hop`)
  to device 2, which continues from what it decoded, and so on; device D runs
  the last stages up to the logits and makes the decision (no server). Every
  hop's bit errors reach the next device.
* :class:`HorizontalPartitionStrategy` (``partition_horizontal``): the output
  units of one stage (the channels of a conv stage, the units of a dense
  stage) are split into D contiguous slices. Every device holds that stage's
  input (the image, for the first stage; later stages are then preceded by
  the earlier ones on every device) and computes its slice; the D partial
  outputs travel over D orthogonal digital hops to a fusion node (the
  server), which concatenates them and runs the remaining stages.

Both take the link's SNR (Es/N0 per complex symbol in dB, noise CN(0, no),
``no = 10**(-snr_db/10)``) for every hop, on ``awgn``, ``rayleigh`` (the
fading of ``phy.digital``, i.i.d. per symbol) or ``tdl-a`` (OFDM, one channel
draw per codeword's slot, perfect CSI). The hops
run LDPC and QAM on ``link.backend`` (Sionna's blocks or the JAX twins) at their
``modulation`` and ``code_rate`` or at a 5G NR MCS (``DigitalHop.mcs``; give
``mcs=`` to ``calibrated``, or let :func:`airinfer.strategies.adaptation.adapt_mcs`
choose one per hop for an SNR). With
``ideal=True`` the activations cross unchanged (no quantiser, no channel) and
the cost is still that of the digital hops: the layer-wise output is then the
full model's bit for bit; the horizontal one is too for dense stages and a
first conv stage, while deeper conv slices can differ by float32 rounding
(XLA's CPU convolution sums a narrower kernel in another order; ~1e-6).

Example::

    strategy = LayerPartitionStrategy.calibrated(model, 3, train_images[:256], bits=8)
    outcome = jax.jit(strategy)(key, images, Link(snr_db=5.0, channel="rayleigh"))
"""

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from airinfer.models.zoo import ConvPool, FlattenDense, SplitClassifier, xla_flops
from airinfer.strategies import digital_hop
from airinfer.strategies.base import Link, Outcome
from airinfer.strategies.cost import Hardware, make_cost
from airinfer.strategies.digital_hop import DigitalHop

__all__ = [
    "even_cuts",
    "stage_flops",
    "LayerPartitionStrategy",
    "HorizontalPartitionStrategy",
]


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_model(model):
    if not isinstance(model, SplitClassifier):
        raise ValueError(f"model must be a models.zoo.SplitClassifier, got {type(model).__name__}")


def _check_images(images):
    if jnp.ndim(images) != 4 or jnp.shape(images)[0] < 1:
        raise ValueError(
            f"images must have shape [B, H, W, C] with B >= 1, got {jnp.shape(images)}"
        )


def _check_link(link):
    if not isinstance(link, Link):
        raise ValueError(f"link must be a strategies.base.Link, got {type(link).__name__}")
    digital_hop._check_channel(link.channel)


def _inference_stages(model):
    """The stages of an inference-mode copy of ``model`` (the caller's model is left as is)."""
    copy = nnx.merge(*nnx.split(model))
    copy.eval()
    return copy.stages


def _run(stages, x):
    for stage in stages:
        x = stage(x)
    return x


def _stage_apply(stage):
    """``(apply(state, x), state)`` of one stage in inference mode."""
    graphdef, state = nnx.split(stage)

    def apply(state, x):
        copy = nnx.merge(graphdef, state)
        copy.eval()
        return copy(x)

    return apply, state


def stage_flops(model, input_shape):
    """FLOPs of each stage of ``model`` on one sample of ``input_shape`` ``(H, W, C)``.

    Counted by XLA as :func:`airinfer.models.zoo.flops` does (a multiply-add is 2);
    returns a tuple of floats, one per stage, input to output.
    """
    _check_model(model)
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    counts = []
    for stage in model.stages:
        apply, state = _stage_apply(stage)
        counts.append(xla_flops(apply, state, x))
        x = jax.eval_shape(apply, state, x)
    return tuple(counts)


def even_cuts(model, num_devices):
    """Split points that give D devices contiguous runs of stages of (nearly) equal length.

    With S stages, device d (0-based) runs stages ``[floor(d S / D), floor((d+1) S / D))``.
    Returns the ``D - 1`` split points (stage names) after which the hops are.
    """
    _check_model(model)
    num_stages = len(model.stage_names)
    if not _is_int(num_devices) or num_devices < 1:
        raise ValueError(f"num_devices must be an int >= 1, got {num_devices!r}")
    if num_devices > num_stages:
        raise ValueError(
            f"num_devices: {num_devices} exceeds the {num_stages} stages of the model "
            f"({', '.join(model.stage_names)}); each device needs at least one"
        )
    return tuple(
        model.stage_names[(d * num_stages) // num_devices - 1] for d in range(1, num_devices)
    )


@dataclasses.dataclass(frozen=True, eq=False)
class LayerPartitionStrategy:
    """Layer-wise partitioning of one model along a chain of devices (``partition_layer``).

    Parameters:
        model: the :class:`airinfer.models.zoo.SplitClassifier` (run in inference mode).
        cuts: the ``D - 1`` split points, input to output, after which device
            d hands over to device d + 1 (``()``: one device, no link).
        hops: one :class:`DigitalHop` per cut (a single hop is used for all).
        ideal: perfect links: activations cross unchanged (cost unchanged).
        hardware: compute speeds and symbol rate behind the latency.

    Input (``__call__``):
        key: JAX PRNG key; hop i uses ``fold_in(key, i)``.
        images: ``[B, H, W, C]`` float32.
        link: :class:`airinfer.strategies.base.Link`; every hop at ``link.snr_db`` on
            ``link.channel`` (``awgn`` or ``rayleigh``).

    Output:
        :class:`airinfer.strategies.base.Outcome`: the last device's logits ``[B,
        num_classes]`` float32 and the cost of one sample: the hops' channel
        uses and payload bits summed, every device's FLOPs summed (the chain is
        the critical path), no server FLOPs.
    """

    model: SplitClassifier
    cuts: tuple[str, ...]
    hops: tuple[DigitalHop, ...] | DigitalHop = DigitalHop()
    ideal: bool = False
    hardware: Hardware = Hardware()
    name: ClassVar[str] = "partition_layer"

    def __post_init__(self):
        _check_model(self.model)
        cuts = (self.cuts,) if isinstance(self.cuts, str) else tuple(self.cuts)
        allowed = self.model.split_points
        for cut in cuts:
            if cut not in allowed:
                raise ValueError(
                    f"cuts: unknown split point {cut!r}; allowed: {', '.join(allowed)}"
                )
        order = [allowed.index(cut) for cut in cuts]
        if order != sorted(set(order)):
            raise ValueError(
                f"cuts: {cuts} must be distinct and ordered input to output ({', '.join(allowed)})"
            )
        hops = (self.hops,) * len(cuts) if isinstance(self.hops, DigitalHop) else tuple(self.hops)
        if len(hops) != len(cuts) or not all(isinstance(h, DigitalHop) for h in hops):
            raise ValueError(
                f"hops: need one DigitalHop per cut ({len(cuts)}), got {len(hops)} "
                f"({', '.join(type(h).__name__ for h in hops)})"
            )
        if not isinstance(self.hardware, Hardware):
            raise ValueError(f"hardware must be a Hardware, got {type(self.hardware).__name__}")
        object.__setattr__(self, "cuts", cuts)
        object.__setattr__(self, "hops", hops)
        object.__setattr__(self, "_flops", {})

    @classmethod
    def calibrated(
        cls, model, num_devices, images, *, bits=8, cuts=None, quantile=1.0, ideal=False,
        hardware=None, **hop_kwargs,
    ):  # fmt: skip
        """A chain of ``num_devices`` with each hop's quantiser range fitted on ``images``.

        ``cuts`` defaults to :func:`even_cuts`; hop i's range spans the
        activations after cut i on ``images`` ``[N, H, W, C]`` (see
        :meth:`DigitalHop.fit`); ``hop_kwargs`` (modulation, code_rate, mcs, …) go
        to every hop.
        """
        cuts = even_cuts(model, num_devices) if cuts is None else tuple(cuts)
        if len(cuts) != num_devices - 1:
            raise ValueError(f"cuts: {cuts} are not num_devices - 1 = {num_devices - 1} cuts")
        stages = _inference_stages(model)
        x = jnp.asarray(images, jnp.float32)
        hops, done = [], 0
        for cut in cuts:
            stop = model.stage_names.index(cut) + 1
            x = _run(stages[done:stop], x)
            done = stop
            hops.append(DigitalHop.fit(x, bits, quantile, **hop_kwargs))
        return cls(model, cuts, tuple(hops), ideal, hardware or Hardware())

    @property
    def num_devices(self):
        """D = number of cuts + 1."""
        return len(self.cuts) + 1

    def device_stages(self):
        """``(start, stop)`` stage indices run by each device, input to output."""
        bounds = [0, *(self.model.stage_names.index(c) + 1 for c in self.cuts)]
        bounds.append(len(self.model.stage_names))
        return tuple(zip(bounds[:-1], bounds[1:], strict=True))

    def hop_values(self, input_shape):
        """Values ``V`` of each hop's message for one sample of ``input_shape`` ``(H, W, C)``:
        a tuple of ints, one per cut."""
        x = jax.ShapeDtypeStruct((1, *(int(d) for d in input_shape)), jnp.float32)
        stages = _inference_stages(self.model)
        values = []
        for start, stop in self.device_stages()[: len(self.cuts)]:
            x = jax.eval_shape(lambda a, s=stages[start:stop]: _run(s, a), x)
            values.append(math.prod(x.shape[1:]))
        return tuple(values)

    def cost(self, input_shape):
        """:class:`airinfer.strategies.cost.Cost` of one sample of ``input_shape`` ``(H, W, C)``."""
        input_shape = tuple(int(d) for d in input_shape)
        if input_shape not in self._flops:
            self._flops[input_shape] = stage_flops(self.model, input_shape)
        channel_uses = payload_bits = 0
        for hop, values in zip(self.hops, self.hop_values(input_shape), strict=True):
            hop_cost = hop.cost(values)
            channel_uses += hop_cost.channel_uses
            payload_bits += hop_cost.payload_bits
        device_flops = sum(self._flops[input_shape], 0.0)
        return make_cost(channel_uses, payload_bits, device_flops, 0.0, self.hardware)

    def message(self, images, snr_db=None):
        """What device 1 sends: its activations as the first hop quantises them,
        ``[B, V]`` float32; None for a single device."""
        if not self.cuts:
            return None
        start, stop = self.device_stages()[0]
        x = _run(_inference_stages(self.model)[start:stop], jnp.asarray(images, jnp.float32))
        return digital_hop.reconstruct(x.reshape(x.shape[0], -1), self.hops[0])

    def __call__(self, key, images, link):
        _check_images(images)
        _check_link(link)
        stages = _inference_stages(self.model)
        x = jnp.asarray(images, jnp.float32)
        for i, (start, stop) in enumerate(self.device_stages()):
            x = _run(stages[start:stop], x)
            if i == len(self.cuts):
                break  # the last device: x are the logits
            if not self.ideal:
                flat = x.reshape(x.shape[0], -1)
                flat = digital_hop.send(
                    jax.random.fold_in(key, i), flat, link.snr_db, self.hops[i], link.channel,
                    backend=link.backend,
                )  # fmt: skip
                x = flat.reshape(x.shape)
        return Outcome(x, self.cost(jnp.shape(images)[1:]))


def _unit_axis_module(stage):
    """The layer whose output units a stage's slices split, or None if it cannot be split."""
    if isinstance(stage, ConvPool):
        return stage.conv  # ReLU and 2x2 max-pool act per channel
    if isinstance(stage, FlattenDense):
        return stage.dense  # ReLU acts per unit
    if isinstance(stage, nnx.Linear):
        return stage
    return None


def _slice_apply(stage, start, stop):
    """``(apply(state, x), state)``: the stage restricted to output units ``[start, stop)``.

    The slice is the stage itself with its kernel and bias cut along their last
    (output) axis, so it runs exactly the stage's own code.
    """
    apply, state = _stage_apply(stage)
    return apply, jax.tree.map(lambda leaf: leaf[..., start:stop], state)


@dataclasses.dataclass(frozen=True, eq=False)
class HorizontalPartitionStrategy:
    """The output units of one stage split across D devices (``partition_horizontal``).

    Parameters:
        model: the :class:`airinfer.models.zoo.SplitClassifier` (run in inference mode).
        layer: the stage whose units are split: a conv stage of ``cnn``
            (channels), a dense stage of ``cnn``/``mlp``, or a final
            ``nnx.Linear`` (units).
        num_devices: D, 1 <= D <= the stage's units; device d gets the d-th of
            D contiguous slices as equal as can be (the first ``U mod D`` one
            unit wider).
        hop: the :class:`DigitalHop` of every device's slice.
        ideal: perfect links: the slices cross unchanged (cost unchanged).
        hardware: compute speeds and symbol rate behind the latency.

    Input (``__call__``):
        key: JAX PRNG key.
        images: ``[B, H, W, C]`` float32, held by every device.
        link: :class:`airinfer.strategies.base.Link`; every hop at ``link.snr_db`` on
            ``link.channel`` (``awgn`` or ``rayleigh``).

    Output:
        :class:`airinfer.strategies.base.Outcome`: the fusion node's logits ``[B,
        num_classes]`` float32 and the cost of one sample: the D orthogonal
        hops' channel uses and payload bits summed; device FLOPs of the
        critical path (the stages before ``layer`` plus the widest slice: the
        devices work in parallel); server FLOPs of the stages after ``layer``.
    """

    model: SplitClassifier
    layer: str
    num_devices: int
    hop: DigitalHop = DigitalHop()
    ideal: bool = False
    hardware: Hardware = Hardware()
    name: ClassVar[str] = "partition_horizontal"

    def __post_init__(self):
        _check_model(self.model)
        names = self.model.stage_names
        if self.layer not in names:
            raise ValueError(f"layer: unknown stage {self.layer!r}; allowed: {', '.join(names)}")
        splittable = [
            n for n, s in zip(names, self.model.stages, strict=True) if _unit_axis_module(s)
        ]
        stage = self.model.stages[names.index(self.layer)]
        module = _unit_axis_module(stage)
        if module is None:
            raise ValueError(
                f"layer: stage {self.layer!r} ({type(stage).__name__}) "
                f"cannot be split by output units; allowed: {', '.join(splittable) or 'none'}"
            )
        units = int(module.kernel.shape[-1])
        if not _is_int(self.num_devices) or not 1 <= self.num_devices <= units:
            raise ValueError(
                f"num_devices: {self.num_devices!r} must be an int in [1, {units}], the units "
                f"of stage {self.layer!r}"
            )
        if not isinstance(self.hop, DigitalHop):
            raise ValueError(f"hop must be a DigitalHop, got {type(self.hop).__name__}")
        if not isinstance(self.hardware, Hardware):
            raise ValueError(f"hardware must be a Hardware, got {type(self.hardware).__name__}")
        object.__setattr__(self, "_units", units)
        object.__setattr__(self, "_flops", {})

    @classmethod
    def calibrated(
        cls, model, layer, num_devices, images, *, bits=8, quantile=1.0, ideal=False,
        hardware=None, **hop_kwargs,
    ):  # fmt: skip
        """As the constructor, with the hop's quantiser range fitted on the outputs
        of ``layer`` for ``images`` ``[N, H, W, C]`` (see :meth:`DigitalHop.fit`)."""
        _check_model(model)
        if layer not in model.stage_names:
            raise ValueError(
                f"layer: unknown stage {layer!r}; allowed: {', '.join(model.stage_names)}"
            )
        stop = model.stage_names.index(layer) + 1
        outputs = _run(_inference_stages(model)[:stop], jnp.asarray(images, jnp.float32))
        return cls(
            model,
            layer,
            num_devices,
            DigitalHop.fit(outputs, bits, quantile, **hop_kwargs),
            ideal,
            hardware or Hardware(),
        )

    def slices(self):
        """``(start, stop)`` of the output units of each device."""
        sizes = [len(part) for part in np.array_split(np.arange(self._units), self.num_devices)]
        stops = np.cumsum(sizes)
        return tuple((int(stop - size), int(stop)) for size, stop in zip(sizes, stops, strict=True))

    def _layer_index(self):
        return self.model.stage_names.index(self.layer)

    def _stage_and_slice_flops(self, input_shape):
        if input_shape not in self._flops:
            index = self._layer_index()
            counts = stage_flops(self.model, input_shape)
            x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
            x = jax.eval_shape(lambda a: _run(_inference_stages(self.model)[:index], a), x)
            stage = self.model.stages[index]
            slice_counts = tuple(
                xla_flops(apply, state, x)
                for apply, state in (_slice_apply(stage, a, b) for a, b in self.slices())
            )
            self._flops[input_shape] = (counts, slice_counts)
        return self._flops[input_shape]

    def slice_values(self, input_shape):
        """Values ``V`` of each device's message (its slice of ``layer``'s output) for one
        sample of ``input_shape`` ``(H, W, C)``: a tuple of ints, one per device."""
        x = jax.ShapeDtypeStruct((1, *(int(d) for d in input_shape)), jnp.float32)
        stop = self._layer_index() + 1
        x = jax.eval_shape(lambda a: _run(_inference_stages(self.model)[:stop], a), x)
        positions = math.prod(x.shape[1:-1])  # pixels per channel (1 for dense stages)
        return tuple(positions * (b - a) for a, b in self.slices())

    def cost(self, input_shape):
        """:class:`airinfer.strategies.cost.Cost` of one sample of ``input_shape`` ``(H, W, C)``."""
        input_shape = tuple(int(d) for d in input_shape)
        counts, slice_counts = self._stage_and_slice_flops(input_shape)
        index = self._layer_index()
        channel_uses = payload_bits = 0
        for values in self.slice_values(input_shape):
            hop_cost = self.hop.cost(values)
            channel_uses += hop_cost.channel_uses
            payload_bits += hop_cost.payload_bits
        device_flops = sum(counts[:index]) + max(slice_counts)
        server_flops = sum(counts[index + 1 :], 0.0)
        return make_cost(channel_uses, payload_bits, device_flops, server_flops, self.hardware)

    def message(self, images, snr_db=None):
        """What the devices send the fusion node: every slice of ``layer``'s output as
        the hops quantise them, concatenated, ``[B, ...]`` float32."""
        stop = self._layer_index() + 1
        x = _run(_inference_stages(self.model)[:stop], jnp.asarray(images, jnp.float32))
        return digital_hop.reconstruct(x, self.hop)

    def __call__(self, key, images, link):
        _check_images(images)
        _check_link(link)
        stages = _inference_stages(self.model)
        index = self._layer_index()
        x = _run(stages[:index], jnp.asarray(images, jnp.float32))  # on every device
        # One small program per device: the slices may differ in width by one unit.
        parts = [
            apply(state, x)
            for apply, state in (_slice_apply(stages[index], a, b) for a, b in self.slices())
        ]
        if not self.ideal:
            parts = self._send(key, parts, link)
        features = jnp.concatenate(parts, axis=-1)
        return Outcome(_run(stages[index + 1 :], features), self.cost(jnp.shape(images)[1:]))

    def _send(self, key, parts, link):
        """Every device's slice over its own hop; slices of one width share one link call."""
        received = list(parts)
        snr_db = jnp.asarray(link.snr_db, jnp.float32)
        if snr_db.ndim == 1:  # one SNR per sample: the same for all of its devices
            snr_db = snr_db[:, None]
        for group, width in enumerate(sorted({p.shape[-1] for p in parts})):
            members = [d for d, p in enumerate(parts) if p.shape[-1] == width]
            stacked = jnp.stack([parts[d] for d in members], axis=1)  # [B, D_w, ..., width]
            flat = stacked.reshape(stacked.shape[0], len(members), -1)
            flat = digital_hop.send(
                jax.random.fold_in(key, group), flat, snr_db, self.hop, link.channel,
                backend=link.backend,
            )  # fmt: skip
            stacked = flat.reshape(stacked.shape)
            for j, d in enumerate(members):
                received[d] = stacked[:, j]
        return received
