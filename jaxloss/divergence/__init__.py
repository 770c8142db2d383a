"""Divergences between distributions.

Shapes: ``kl_div`` is per element (the broadcast shape of its inputs); ``gaussian_kl`` sums
over the latent ``axis`` and its per-example shape is the inputs' shape without it.
"""

from jaxloss.divergence.kl import gaussian_kl as gaussian_kl
from jaxloss.divergence.kl import kl_div as kl_div
