"""MONAI's and kornia's losses, as ``tests/_suite/test_catalogues.py`` checks them.

As for pytorch-metric-learning, jaxloss does not translate every loss of these libraries:
each must have a PEERS entry (``"monai:<ClassName>"``, ``"kornia:<name>"``) or a line in
``MONAI_NOT_TRANSLATED`` / ``KORNIA_NOT_TRANSLATED`` saying why not, never both.

* MONAI's catalogue is the loss classes of ``monai.losses`` by their own class names
  (``monai.losses.Dice`` and ``dice_ce`` are aliases of ``DiceLoss`` and ``DiceCELoss``),
  less the wrappers of other losses (``MONAI_EXCLUDED``).
* kornia's is the loss modules of ``kornia.losses``, each named by the function of
  ``kornia.losses`` its ``forward`` calls (``LovaszSoftmaxLoss`` -> ``lovasz_softmax_loss``)
  or, for a module without one, by its class name.
"""

from __future__ import annotations

import inspect
import re

import torch

MONAI_EXCLUDED: dict[str, str] = {
    "DeepSupervisionLoss": "wrapper: another loss summed over the decoder's outputs",
    "MaskedLoss": "wrapper: another loss on the masked pixels",
    "MultiScaleLoss": "wrapper: another loss of blurred inputs at several scales",
}

MONAI_NOT_TRANSLATED: dict[str, str] = {
    "AUCMLoss": "not in jaxloss yet (AUC margin loss)",
    "AsymmetricUnifiedFocalLoss": "not in jaxloss yet",
    "BarlowTwinsLoss": "not in jaxloss yet",
    "BendingEnergyLoss": "registration regularizer: not in jaxloss yet",
    "BoxGIoULoss": "detection (boxes): not in jaxloss yet",
    "DiffusionLoss": "registration regularizer: not in jaxloss yet",
    "GeneralizedDiceFocalLoss": "not in jaxloss yet (generalized_dice plus a focal term)",
    "GeneralizedWassersteinDiceLoss": "not in jaxloss yet",
    "GlobalMutualInformationLoss": "registration similarity: not in jaxloss yet",
    "JukeboxLoss": "audio spectral loss: not in jaxloss yet",
    "LocalNormalizedCrossCorrelationLoss": "registration similarity: not in jaxloss yet",
    "MCCLoss": "not in jaxloss yet (Matthews correlation)",
    "MaskedDiceLoss": "masks pixels, where jaxloss's `where` masks (sample, class) entries; "
    "zero the masked pixels of both inputs instead",
    "NACLLoss": "not in jaxloss yet",
    "PatchAdversarialLoss": "GAN losses are in jaxloss.generative with other names; "
    "not yet checked against this class",
    "PerceptualLoss": "needs MONAI's pretrained feature networks (jaxloss.perceptual_loss "
    "takes the caller's features)",
    "SURELoss": "not in jaxloss yet",
}

KORNIA_NOT_TRANSLATED: dict[str, str] = {
    "HausdorffERLoss": "Karimi & Salcudean's erosion form; jaxloss has the distance-transform "
    "form (hausdorff_dt)",
    "HausdorffERLoss3D": "the erosion form in 3-D, as HausdorffERLoss",
    "MS_SSIMLoss": "Zhao et al. 2017's mix of MS-SSIM and L1 with five Gaussians at full "
    "resolution and zero padding, not Wang et al.'s dyadic pyramid (jaxloss.ms_ssim)",
    "MILossFromRef": "registration similarity (mutual information): not in jaxloss yet",
    "MILossFromRef2D": "registration similarity: not in jaxloss yet",
    "MILossFromRef3D": "registration similarity: not in jaxloss yet",
    "NMILossFromRef": "registration similarity: not in jaxloss yet",
    "NMILossFromRef2D": "registration similarity: not in jaxloss yet",
    "NMILossFromRef3D": "registration similarity: not in jaxloss yet",
    "cauchy_loss": "Barron's robust loss family: not in jaxloss yet",
    "geman_mcclure_loss": "Barron's robust loss family: not in jaxloss yet",
    "welsch_loss": "Barron's robust loss family: not in jaxloss yet",
    "inverse_depth_smoothness_loss": "depth regularizer: not in jaxloss yet",
    "psnr_loss": "not in jaxloss yet (−PSNR is 10·log10 of the MSE over data_range²)",
}


def monai_losses() -> set[str]:
    """The loss classes of ``monai.losses`` by class name, less ``MONAI_EXCLUDED``."""
    import monai.losses

    return {
        cls.__name__
        for cls in vars(monai.losses).values()
        if inspect.isclass(cls) and issubclass(cls, torch.nn.Module)
    } - set(MONAI_EXCLUDED)


def kornia_losses() -> set[str]:
    """The loss modules of ``kornia.losses``, by the function their ``forward`` calls."""
    import kornia.losses

    functions = {n for n, v in vars(kornia.losses).items() if inspect.isfunction(v)}
    names = set()
    for name, cls in vars(kornia.losses).items():
        if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module)):
            continue
        called = set(re.findall(r"\b(\w+)\(", inspect.getsource(cls.forward))) & functions
        names.add(called.pop() if len(called) == 1 else name)
    return names
