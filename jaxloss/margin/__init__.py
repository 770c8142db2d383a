"""Margin softmax (face and speaker verification), center loss, and linear cross-entropy.

Shapes: ``embeddings``/``hidden``/``features`` ``[batch, dim]``; ``centers``/``weight``
``[num_classes, dim]`` (the class weight rows); ``labels`` ``[batch]`` int. The per-example
loss (``reduction="none"``) has shape ``[batch]``.

Every softmax here has the form: logits ``z_j = x · w_j (+ b_j)`` for the non-target classes
and a *target logit* ``t`` computed apart (with its margin). So each is

    loss = logaddexp(r, t) - t,   r = log Σ_{j != y} exp(z_j),

with ``r`` from the shared kernel ``_kernels.chunked_logsumexp`` (chunked with
``chunk_size``: never a batch × classes matrix, in the forward or the backward pass), and
``t`` from the label's class row alone (O(batch × dim)), differentiated by autodiff.

``class_axis_name`` (model parallel, as Partial FC): ``centers`` hold this device's slice of
the classes along that mapped axis; labels are global ids. Each device computes ``r`` over
its own classes; the shards combine with a ``pmax`` of the (stop-gradient) maxima and a
``psum``, and the label's class row is ``psum``-ed from the device that holds it.
"""

from jaxloss.margin.adaptive import adaface as adaface
from jaxloss.margin.adaptive import adaface_update as adaface_update
from jaxloss.margin.adaptive import curricularface as curricularface
from jaxloss.margin.adaptive import curricularface_update as curricularface_update
from jaxloss.margin.center import center_loss as center_loss
from jaxloss.margin.center import center_update as center_update
from jaxloss.margin.face import elasticface as elasticface
from jaxloss.margin.face import magface as magface
from jaxloss.margin.face import subcenter_arcface as subcenter_arcface
from jaxloss.margin.heads import am_softmax as am_softmax
from jaxloss.margin.heads import arcface as arcface
from jaxloss.margin.heads import combined_margin as combined_margin
from jaxloss.margin.heads import cosface as cosface
from jaxloss.margin.heads import norm_softmax as norm_softmax
from jaxloss.margin.heads import sphereface as sphereface
from jaxloss.margin.linear import linear_cross_entropy as linear_cross_entropy
from jaxloss.margin.proxies import proxy_anchor as proxy_anchor
from jaxloss.margin.proxies import proxy_nca as proxy_nca
from jaxloss.margin.proxies import soft_triple as soft_triple
