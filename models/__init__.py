"""Device and server models: data sets, a split-able model zoo, ensembles, training, checkpoints.

The public API, re-exported from the submodules:

* :mod:`airinfer.models.datasets`: ``load_dataset`` (``digits``, ``fashion_mnist``,
  ``cifar10``), bagging/shard index sets, batch iterators; the files behind
  them (search folders, downloads, checksums, IDX and CIFAR-10 formats) in
  :mod:`airinfer.models.dataset_files`.
* :mod:`airinfer.models.zoo`: ``ModelConfig``, ``build_model`` (``cnn``, ``mobilenet_v2``,
  ``mlp``), split points (``front``/``back``), ``count_params``, ``flops`` and
  ``xla_flops`` (XLA's count of any function, used across the strategies).
* :mod:`airinfer.models.ensemble`: ``EnsembleConfig`` and its diversity kinds, stacked
  ``MemberGroup``/``Ensemble``, ``stochastic_quantize``, ``ensemble_metrics``.
* :mod:`airinfer.models.fit` (imported by its own name, ``from airinfer.models.fit
  import fit``): the one training loop (a jitted optax step,
  an optional member axis, validation with early stopping, progress, resumable
  checkpoints) that ensembles, the analog link's codec, the split bottleneck
  and the inversion attacker all train with; ``adamw_cosine``.
* :mod:`airinfer.models.recipe`: ``TrainConfig`` (a run's settings: AdamW, augmentation,
  early stopping) and ``converged_recipe``, the run to convergence.
* :mod:`airinfer.models.train`: ``train_ensemble``, ``train_group`` in the loop or vmap
  formulation.
* :mod:`airinfer.models.inference`: ``choose_formulation``'s rule (loop or vmap, by
  backend and model) and the members' logits, ``group_logits``, ``ensemble_logits``.
* :mod:`airinfer.models.checkpoint` and :mod:`airinfer.models.cache`: orbax checkpoints (a JSON
  description beside the arrays) that check the architecture on load, and a
  cache of trained artefacts keyed by a description of what trained them
  (ensembles here, the analog link's codecs in :mod:`airinfer.strategies.jscc`).
* :mod:`airinfer.models.inversion` (a package, imported on its own): the model-inversion
  attack, the privacy proxy of the strategies' messages.

Example::

    from airinfer.models import (
        EnsembleConfig, ModelConfig, TrainConfig, load_dataset, train_ensemble,
    )
    data = load_dataset("digits")
    config = EnsembleConfig(ModelConfig("cnn", data.image_shape, 10, width=0.5), members=4)
    ensemble, report = train_ensemble(data, config, TrainConfig(epochs=10, batch_size=64))
"""

from airinfer.models.cache import cache_key, cache_root, cached_train_ensemble
from airinfer.models.checkpoint import (
    CheckpointMismatchError,
    load_ensemble,
    read_description,
    save_ensemble,
)
from airinfer.models.datasets import (
    DATASETS,
    Dataset,
    DatasetError,
    bootstrap_indices,
    disjoint_shards,
    epoch_batches,
    iterate_batches,
    load_dataset,
)
from airinfer.models.ensemble import (
    DIVERSITY_KINDS,
    Ensemble,
    EnsembleConfig,
    MemberGroup,
    ensemble_metrics,
    init_group,
    stack_models,
    stochastic_quantize,
)
from airinfer.models.inference import (
    FORMULATIONS,
    choose_formulation,
    ensemble_logits,
    group_logits,
)
from airinfer.models.recipe import TrainConfig, converged_recipe
from airinfer.models.train import (
    TrainReport,
    planned_member_steps,
    train_ensemble,
    train_group,
)
from airinfer.models.zoo import (
    MODEL_KINDS,
    ModelConfig,
    SplitClassifier,
    abstract_model,
    build_model,
    count_params,
    feature_shape,
    flops,
    split_params,
    xla_flops,
)

__all__ = [
    "DATASETS",
    "DIVERSITY_KINDS",
    "FORMULATIONS",
    "MODEL_KINDS",
    "CheckpointMismatchError",
    "Dataset",
    "DatasetError",
    "Ensemble",
    "EnsembleConfig",
    "MemberGroup",
    "ModelConfig",
    "SplitClassifier",
    "TrainConfig",
    "converged_recipe",
    "TrainReport",
    "abstract_model",
    "bootstrap_indices",
    "build_model",
    "cache_key",
    "cache_root",
    "cached_train_ensemble",
    "choose_formulation",
    "count_params",
    "disjoint_shards",
    "ensemble_logits",
    "ensemble_metrics",
    "epoch_batches",
    "feature_shape",
    "flops",
    "group_logits",
    "init_group",
    "iterate_batches",
    "load_dataset",
    "load_ensemble",
    "planned_member_steps",
    "read_description",
    "save_ensemble",
    "split_params",
    "stack_models",
    "stochastic_quantize",
    "train_ensemble",
    "train_group",
    "xla_flops",
]
