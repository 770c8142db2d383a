"""Every ``jax.custom_vjp`` (or ``custom_jvp``) kernel of jaxloss, each module with its
notation and memory.

The rule: a ``custom_vjp`` lives in ``_kernels/``; a family module only calls it. A kernel
takes checked, masked arrays (the family module does the checks, the masking door and the
reduction) and returns per-row values whose gradient it writes by hand, for memory or time
that autodiff of the plain expression cannot reach.

* ``chunked_logsumexp``: the log-sum-exp over the non-target classes of ``x @ w.T + b`` in
  class blocks, and the row-blocked weighted sum of full log-sum-exps (margin heads,
  ``linear_cross_entropy``).
* ``ctc``: the CTC negative log-likelihood, alpha recursion forward and its adjoint back.
* ``nearest_neighbours``: Chamfer's blocked nearest-neighbour search, differentiated from
  the neighbours' indices alone.
* ``soft_cross_entropy``: the cross-entropy of probability targets with ``0 · log 0 = 0``
  for classes left out by a −inf logit, a ``custom_jvp`` (forward mode kept) at the cost of
  the plain expression.
* ``row_kl``: the KL divergence and GKD's generalized JSD between two softmaxes per row
  (``distill_kl``, ``generalized_jsd``), each a
  ``custom_jvp`` whose value is a few row sums of the logits (YNNPACK kernels on XLA:CPU)
  and whose gradient recomputes the probabilities, so no array of the logits' size is
  written besides the gradients.
* ``pools``: the windows of 3 of soft erosion and dilation (``soft_cldice``'s skeleton),
  one reduction for the extremum and the chosen neighbour, differentiated as a gather by
  that neighbour (a ``custom_jvp``; reverse mode is one scatter-add).
* ``blocks``: splitting an axis into padded blocks for a ``scan``, and back (not a kernel;
  the kernels' one copy of it).
"""
