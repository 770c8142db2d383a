"""Regression losses: distances between predictions and real-valued targets.

Shapes: ``predictions`` and ``targets`` broadcast together; the per-element loss
(``reduction="none"``) has their broadcast shape (with ``gaussian_nll``'s variances), and
``where`` and ``weights`` broadcast to it.
"""

from jaxloss.regression.elementwise import huber as huber
from jaxloss.regression.elementwise import l1 as l1
from jaxloss.regression.elementwise import log_cosh as log_cosh
from jaxloss.regression.elementwise import mae as mae
from jaxloss.regression.elementwise import mse as mse
from jaxloss.regression.elementwise import smooth_l1 as smooth_l1
from jaxloss.regression.likelihood import gaussian_nll as gaussian_nll
from jaxloss.regression.likelihood import poisson_nll as poisson_nll
from jaxloss.regression.robust import charbonnier as charbonnier
