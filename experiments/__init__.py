"""Experiments: configs, the sweep runner, plots and the ``airinfer`` command line.

- :mod:`experiments.registry`: the :class:`~experiments.registry.Experiment`
  interface and the table of known experiments (importing it costs nothing).
- :mod:`experiments.config`: typed, frozen configs; ``--set dotted.key=value``.
- :mod:`experiments.runner`: resumable sweeps into a results folder.
- :mod:`experiments.plotting`: small figure helpers for experiments' plots.
- :mod:`experiments.cli`: the ``airinfer`` command.

This package imports nothing heavy on purpose: ``airinfer list`` must not pay
for JAX or TensorFlow.
"""
