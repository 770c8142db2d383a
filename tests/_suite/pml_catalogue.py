"""pytorch-metric-learning's losses, as ``tests/_suite/test_catalogues.py`` checks them.

Unlike torch's and optax's catalogues, jaxloss does not translate every PML loss yet: each
loss class must have a ``"pml:<ClassName>"`` PEERS entry or a line in
``PML_NOT_TRANSLATED`` saying why not, never both. Adding a translation removes its line.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import torch

# Classes of ``pytorch_metric_learning.losses`` that are not losses of their own; the
# catalogue test checks that introspection leaves out exactly these.
PML_EXCLUDED: dict[str, str] = {
    "BaseMetricLossFunction": "abstract base: its compute_loss raises NotImplementedError",
    "GenericPairLoss": "abstract base of the pair losses: its _compute_loss raises",
    "BaseLossWrapper": "base of the wrappers below",
    "CrossBatchMemory": "wrapper: another loss against a queue of past embeddings",
    "MultipleLosses": "wrapper: a weighted sum of other losses",
    "SelfSupervisedLoss": "wrapper: another loss on two views labelled by position",
}

# Every PML loss without a PEERS entry, with the reason.
PML_NOT_TRANSLATED: dict[str, str] = {
    "GeneralizedLiftedStructureLoss": "Hermans et al.'s per-anchor form, "
    "[log Σ_P exp(D - pos_margin) + log Σ_N exp(neg_margin - D)]_+, a loss of its own: "
    "jaxloss.lifted_structure is Oh Song et al.'s per-pair form (PML's LiftedStructureLoss)",
    "AngularLoss": "not in API.md yet",
    "ContrastiveLoss": "PML's is the unsquared hinge over every pair of the batch, its "
    "positive and negative terms each averaged over their nonzero pairs; "
    "jaxloss.contrastive is Hadsell's squared form of given pairs",
    "DynamicSoftMarginLoss": "not in API.md yet",
    "HistogramLoss": "not in API.md yet",
    "InstanceLoss": "not in API.md yet",
    "IntraPairVarianceLoss": "not in API.md yet",
    "LargeMarginSoftmaxLoss": "L-Softmax scales each logit by its weight's norm; "
    "jaxloss.sphereface normalizes the centers (equal for unit-norm weights only)",
    "ManifoldLoss": "not in API.md yet",
    "NCALoss": "not in API.md yet (proxy_nca is its proxy form)",
    "P2SGradLoss": "not in API.md yet",
    "PNPLoss": "not in API.md yet",
    "RankedListLoss": "not in API.md yet",
    "SignalToNoiseRatioContrastiveLoss": "not in API.md yet",
    "SmoothAPLoss": "not in API.md yet",
    "ThresholdConsistentMarginLoss": "not in API.md yet",
    "VICRegLoss": "not in API.md yet",
}


def _raises_only(method) -> bool:
    """The method's body (its docstring aside) is a single ``raise``: an abstract hook."""
    (function,) = ast.parse(textwrap.dedent(inspect.getsource(method))).body
    body = [
        s
        for s in function.body  # type: ignore[attr-defined]
        if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def pml_modules() -> dict[str, type]:
    """Every ``torch.nn.Module`` class of ``pytorch_metric_learning.losses``, by name."""
    from pytorch_metric_learning import losses

    return {
        name: cls
        for name, cls in vars(losses).items()
        if inspect.isclass(cls) and issubclass(cls, torch.nn.Module)
    }


def pml_losses() -> set[str]:
    """The loss classes of ``pytorch_metric_learning.losses``: subclasses of its
    ``BaseMetricLossFunction`` whose loss hooks (``compute_loss``, and ``_compute_loss``
    of the pair losses) are implemented. The wrappers, which hold other losses, are not
    subclasses of it."""
    from pytorch_metric_learning.losses import BaseMetricLossFunction

    return {
        name
        for name, cls in pml_modules().items()
        if issubclass(cls, BaseMetricLossFunction)
        and not any(
            _raises_only(getattr(cls, hook))
            for hook in ("compute_loss", "_compute_loss")
            if hasattr(cls, hook)
        )
    }
