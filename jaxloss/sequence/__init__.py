"""Connectionist temporal classification: the CTC loss, with its forward variables
(``ctc_with_forward_probs``), and the greedy (best-path) decoder.

Shapes: ``logits`` ``[batch, time, num_classes]``; ``labels`` ``[batch, max_label_length]``
padded; ``logit_lengths`` and ``label_lengths`` ``[batch]``. The per-example loss
(``reduction="none"``) has shape ``[batch]``.
"""

from jaxloss.sequence.connectionist import ctc as ctc
from jaxloss.sequence.connectionist import ctc_greedy_decode as ctc_greedy_decode
from jaxloss.sequence.connectionist import ctc_with_forward_probs as ctc_with_forward_probs
