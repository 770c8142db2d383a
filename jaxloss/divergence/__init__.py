"""Divergences between distributions.

Shapes: ``kl_div`` is per element (the broadcast shape of its inputs); ``gaussian_kl`` and
``generalized_kl`` sum over ``axis`` and their per-example shape is the inputs' shape
without it.
"""

from jaxloss.divergence.kl import gaussian_kl as gaussian_kl
from jaxloss.divergence.kl import generalized_kl as generalized_kl
from jaxloss.divergence.kl import kl_div as kl_div
