"""Connectionist temporal classification: the CTC loss and the greedy (best-path) decoder.

Shapes: ``logits`` ``[batch, time, num_classes]``; ``labels`` ``[batch, max_label_length]``
padded; ``logit_lengths`` and ``label_lengths`` ``[batch]``. The per-example loss
(``reduction="none"``) has shape ``[batch]``.
"""

from jaxloss.sequence.connectionist import ctc as ctc
from jaxloss.sequence.connectionist import ctc_greedy_decode as ctc_greedy_decode
