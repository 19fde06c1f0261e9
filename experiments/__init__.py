"""Experiments: configs, the sweep runner, plots and the ``airinfer`` command line.

- :mod:`airinfer.experiments.registry`: the :class:`~airinfer.experiments.registry.Experiment`
  interface; experiments register where they are defined, and are found
  without being imported (importing it costs nothing).
- :mod:`airinfer.experiments.config`: typed, frozen configs; ``--set dotted.key=value``.
- :mod:`airinfer.experiments.runner`: resumable sweeps into a results folder
  (:mod:`airinfer.experiments.folder`: its atomic files and CSV).
- :mod:`airinfer.experiments.plotting`: small figure helpers for experiments' plots.
- :mod:`airinfer.experiments.cli`: the ``airinfer`` command.
- The experiments: ``link_ber``, ``ota_snr``, ``ota_connectivity``,
  ``ota_privacy``, ``oac_table1``, ``latency_bitrate``, ``strategies_snr``,
  ``strategies_budget``, ``table1``, ``hybrid_snr``, ``inversion_snr``,
  ``train`` (an ensemble) and ``train_encoder`` (an analog split link);
  ``airinfer list`` names them all.

This package imports nothing heavy on purpose: ``airinfer list`` must not pay
for JAX or TensorFlow.
"""
