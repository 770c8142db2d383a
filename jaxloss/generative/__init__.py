"""Generative models: GAN objectives for both players, WGAN-GP's penalty, and the VAE's ELBO.

Shapes: every GAN loss takes the discriminator's (critic's) outputs, one score per example
``[batch]`` or any shape, and returns per-example values of the broadcast shape for
``reduction="none"``. Logits are unbounded real numbers (no sigmoid applied); all the
logistic losses go through ``softplus``/``log_sigmoid``, so they are exact for any logit.
``gradient_penalty`` takes the critic itself and two batches ``[batch, ...]``.
``elbo_loss`` takes a per-example reconstruction loss ``[batch]`` and the encoder's
``mean`` and ``log_var`` ``[batch, latent_dim]``.
"""

from jaxloss.generative.gan import gan_discriminator as gan_discriminator
from jaxloss.generative.gan import gan_generator as gan_generator
from jaxloss.generative.gan import gradient_penalty as gradient_penalty
from jaxloss.generative.gan import hinge_discriminator as hinge_discriminator
from jaxloss.generative.gan import hinge_generator as hinge_generator
from jaxloss.generative.gan import wasserstein_critic as wasserstein_critic
from jaxloss.generative.gan import wasserstein_generator as wasserstein_generator
from jaxloss.generative.vae import elbo_loss as elbo_loss
