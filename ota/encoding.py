"""What the devices send: values to power-limited complex symbols, and back.

Every device maps its ``C`` values (softmax outputs, logits, one-hot votes,
sign votes or features) through the **same affine map**, known to the
receiver::

    u = (v - offset) * sqrt(n) / scale,      n = ceil(C / 2) channel uses

and packs the ``2n`` reals into ``n`` complex symbols (first half of the reals
on the real parts, second half on the imaginary parts, one zero appended for
odd ``C``). A vector whose norm ``||v - offset||`` exceeds ``scale`` is first
shrunk onto the ball of radius ``scale``, so the average energy per symbol
``||u||^2 / n = ||v - offset||^2 / scale^2`` is at most 1 on **every** block,
not just on average. A transmit amplitude ``b`` with ``|b|^2 <= P`` then meets
the per-device power constraint ``P`` deterministically. With ``clip=False``
the map is purely affine: values that carry differential-privacy noise must
not be shrunk after it (that would change the noise the accounting assumes),
and the caller bounds how often they exceed the budget instead
(:func:`airinfer.ota.privacy.over_the_air_privacy_plan`).

Because the map is affine and the same on every device, the average of the
``u_k`` maps back to the average of the ``v_k``: the receiver de-normalises its
estimate with :func:`denormalize`.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from airinfer.ota._checks import check_bool_field, check_positive, check_positive_int
from airinfer.phy.conventions import reals_to_symbols, symbols_to_reals

__all__ = [
    "Normalization",
    "num_channel_uses",
    "normalize",
    "denormalize",
    "values_to_symbols",
    "symbols_to_values",
    "one_hot_votes",
    "sign_votes",
    "decide",
    "NO_DECISION",
    "check_finite",
]

# Keeps the norm-shrinking factor's gradient finite for an all-offset vector.
_TINY = 1e-30


@dataclasses.dataclass(frozen=True)
class Normalization:
    """The affine map ``u = (v - offset) sqrt(n) / scale`` shared by devices and receiver.

    Hashable: a static ``jax.jit`` argument.

    Parameters:
        offset: subtracted from every value (centring saves transmit power).
        scale: bound on the L2 norm of ``v - offset`` over the ``C`` values of
            one device; larger vectors are shrunk to it before sending.
        clip: shrink larger vectors (default); ``False``: send them as they
            are, above the power budget (for values carrying privacy noise).

    Use the constructors for the usual payloads: :meth:`simplex` (softmax
    outputs and one-hot votes), :meth:`signs` (±1 votes), :meth:`box` (values
    known to lie in an interval, e.g. clipped logits or features).
    """

    offset: float = 0.0
    scale: float = 1.0
    clip: bool = True

    def __post_init__(self):
        if not math.isfinite(float(self.offset)):
            raise ValueError(f"offset must be finite, got {self.offset!r}")
        check_positive("scale", self.scale)
        check_bool_field(self, "clip")

    @classmethod
    def simplex(cls, num_classes):
        """Probability vectors and one-hot votes over ``num_classes`` classes.

        Centred at the uniform vector ``1/C``; on the simplex
        ``||p - 1/C||^2 = ||p||^2 - 1/C <= 1 - 1/C``, reached by one-hot vectors.
        """
        check_positive_int("num_classes", num_classes)
        if num_classes == 1:
            return cls(offset=1.0, scale=1.0)
        return cls(offset=1.0 / num_classes, scale=math.sqrt(1.0 - 1.0 / num_classes))

    @classmethod
    def signs(cls, num_values):
        """±1 votes: ``||s||^2 = C`` exactly, so every symbol carries energy 1 (even ``C``)."""
        check_positive_int("num_values", num_values)
        return cls(offset=0.0, scale=math.sqrt(num_values))

    @classmethod
    def box(cls, low, high, num_values):
        """Values in ``[low, high]`` entrywise: centred at the middle; worst case, every
        entry at an end of the interval."""
        check_positive_int("num_values", num_values)
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"box needs finite low < high, got low={low!r}, high={high!r}")
        return cls(offset=(low + high) / 2, scale=(high - low) / 2 * math.sqrt(num_values))


def num_channel_uses(num_values):
    """Complex channel uses for ``num_values`` reals: ``ceil(C / 2)`` (two reals per symbol)."""
    check_positive_int("num_values", num_values)
    return -(-num_values // 2)


def _safe_norm(x):
    """L2 norm over the last axis with a finite gradient at zero (double-where)."""
    squared = jnp.sum(x * x, axis=-1, keepdims=True)
    positive = squared > _TINY
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def normalize(values, normalization):
    """Device values to normalised reals of average energy per symbol at most 1.

    Input:
        values: ``[..., C]`` float.
        normalization: :class:`Normalization`.

    Output:
        ``[..., C]`` float32 ``u = (v - offset) sqrt(n) / scale`` after shrinking
        ``||v - offset||`` to at most ``scale`` (unless ``normalization.clip`` is
        False); ``n = ceil(C / 2)``.
    """
    values = jnp.asarray(values, jnp.float32)
    centred = values - normalization.offset
    n = num_channel_uses(values.shape[-1])
    if not normalization.clip:
        return centred * (math.sqrt(n) / normalization.scale)
    norm = _safe_norm(centred)
    # Shrink only vectors beyond the bound; maximum(., scale) keeps the divisor > 0.
    shrink = normalization.scale / jnp.maximum(norm, normalization.scale)
    return centred * shrink * (math.sqrt(n) / normalization.scale)


def denormalize(normalized, normalization):
    """Inverse of :func:`normalize` on the ball: ``v = offset + u scale / sqrt(n)``."""
    normalized = jnp.asarray(normalized, jnp.float32)
    n = num_channel_uses(normalized.shape[-1])
    return normalization.offset + normalized * (normalization.scale / math.sqrt(n))


def values_to_symbols(values, normalization):
    """``[..., C]`` values to ``[..., ceil(C/2)]`` complex64 symbols of energy per symbol <= 1."""
    return reals_to_symbols(normalize(values, normalization))


def symbols_to_values(symbols, num_values, normalization):
    """``[..., ceil(C/2)]`` complex symbols back to ``[..., C]`` de-normalised values."""
    return denormalize(symbols_to_reals(symbols, num_values), normalization)


def one_hot_votes(values):
    """Each device's vote for its top class: ``[..., C]`` scores to ``[..., C]`` one-hot float32.

    Averaged over devices (over the air or not), the result counts the votes:
    its argmax is the majority vote. Send with :meth:`Normalization.simplex`.
    """
    values = jnp.asarray(values)
    return jax.nn.one_hot(jnp.argmax(values, axis=-1), values.shape[-1], dtype=jnp.float32)


def sign_votes(values, reference=None):
    """One-bit votes per class: ``+1`` where a value is at or above ``reference``, else ``-1``.

    Input ``values`` ``[..., C]``; ``reference`` broadcastable to it, by
    default each device's mean over its ``C`` values (``1/C`` for softmax
    outputs). Output ``[..., C]`` float32 of ±1. The average over devices is a
    per-class majority vote (its sign); the decision is still its argmax.
    Send with :meth:`Normalization.signs`.
    """
    values = jnp.asarray(values, jnp.float32)
    if reference is None:
        reference = jnp.mean(values, axis=-1, keepdims=True)
    return jnp.where(values >= reference, 1.0, -1.0).astype(jnp.float32)


#: The decision where the estimate is not finite: no class (never counted as correct).
NO_DECISION = -1


def decide(average):
    """The ensemble decision: argmax of the estimated average, where it is well defined.

    ``jnp.argmax`` lets a NaN win (it returns the first NaN's index). Here an
    estimate holding NaN or +inf, or with no entry above -inf, gets
    :data:`NO_DECISION` instead, which is never a label; -inf entries beside
    finite ones (the log of a zero probability) are kept and simply lose.
    Jit-able: under ``jit`` this is the flag in the outcome that nothing
    non-finite silently decided.

    Input:
        average: ``[..., C]`` the receiver's estimate (or log-probabilities).

    Output:
        ``[...]`` int32 classes, :data:`NO_DECISION` where the estimate is not usable.
    """
    average = jnp.asarray(average)
    usable = ~jnp.any(jnp.isnan(average) | (average == jnp.inf), axis=-1) & jnp.any(
        average > -jnp.inf, axis=-1
    )
    return jnp.where(usable, jnp.argmax(average, axis=-1), NO_DECISION).astype(jnp.int32)


def check_finite(name: str, array, allow_posinf: bool = False) -> None:
    """Refuse NaN or inf in ``array`` where it is concrete (a traced one passes: :func:`decide`).

    ``allow_posinf`` lets +inf through: an SNR of +inf dB is a noiseless link, the
    same eager as under ``jit``.

    Raises:
        ValueError: naming ``name``, how many values are not finite and the first one's index.
    """
    if isinstance(array, jax.core.Tracer):
        return
    values = np.asarray(array)
    finite = np.isfinite(values) | (allow_posinf & (values == np.inf))
    what = "NaN or -inf" if allow_posinf else "NaN or infinite"
    if values.ndim == 0 and not finite:
        raise ValueError(f"{name} is {values.item()!r}; non-finite values cannot decide")
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name}: {values.size - int(finite.sum())} of {values.size} values are {what} "
            f"(the first at index {first}); non-finite values cannot decide"
        )
