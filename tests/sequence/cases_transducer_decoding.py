"""Transducer decoding as the shared suites see it: not losses, tested in their own module."""

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {
    "rnnt_beam_search": "tests/sequence/test_transducer_decoding.py",
    "rnnt_greedy_decode": "tests/sequence/test_transducer_decoding.py",
}
