"""Sequences: losses that sum over every alignment of a label sequence to the frames, the
decoders that read label sequences back, and the aligner.

- CTC (``connectionist.py``): ``ctc``, ``ctc_with_forward_probs`` and the best-path
  ``ctc_greedy_decode``; ``decoding.py``: prefix beam search (``ctc_beam_search``);
  ``alignment.py``: the Viterbi alignment (``ctc_forced_align``).
- RNN-Transducer (``transducer.py``): ``rnnt`` from the joiner's logits and ``linear_rnnt``
  from its inputs in blocks of frames; ``transducer_decoding.py``: ``rnnt_greedy_decode``
  (and the model interface of the decoders); ``transducer_beam_search.py``:
  ``rnnt_beam_search``.

Shapes: CTC ``logits`` ``[batch, time, num_classes]``, RNN-T ``logits``
``[batch, time, max_label_length + 1, num_classes]``; ``labels``
``[batch, max_label_length]`` padded; ``logit_lengths`` and ``label_lengths`` ``[batch]``.
The per-example loss (``reduction="none"``) has shape ``[batch]``.
"""

from jaxloss.sequence.alignment import ctc_forced_align as ctc_forced_align
from jaxloss.sequence.connectionist import ctc as ctc
from jaxloss.sequence.connectionist import ctc_greedy_decode as ctc_greedy_decode
from jaxloss.sequence.connectionist import ctc_with_forward_probs as ctc_with_forward_probs
from jaxloss.sequence.decoding import ctc_beam_search as ctc_beam_search
from jaxloss.sequence.transducer import linear_rnnt as linear_rnnt
from jaxloss.sequence.transducer import rnnt as rnnt
from jaxloss.sequence.transducer_beam_search import rnnt_beam_search as rnnt_beam_search
from jaxloss.sequence.transducer_decoding import rnnt_greedy_decode as rnnt_greedy_decode
