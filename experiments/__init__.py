"""Experiments: configs, the sweep runner, plots and the ``airinfer`` command line.

- :mod:`experiments.registry`: the :class:`~experiments.registry.Experiment`
  interface; experiments register where they are defined, and are found
  without being imported (importing it costs nothing).
- :mod:`experiments.config`: typed, frozen configs; ``--set dotted.key=value``.
- :mod:`experiments.runner`: resumable sweeps into a results folder
  (:mod:`experiments.folder`: its atomic files and CSV).
- :mod:`experiments.plotting`: small figure helpers for experiments' plots.
- :mod:`experiments.cli`: the ``airinfer`` command.
- The experiments: ``link_ber``, ``ota_snr``, ``ota_connectivity``,
  ``ota_privacy``, ``latency_bitrate``, ``strategies_snr``, ``table1``,
  ``train`` (an ensemble) and ``train_encoder`` (an analog split link).

This package imports nothing heavy on purpose: ``airinfer list`` must not pay
for JAX or TensorFlow.
"""
