"""CTC beam search as the shared suites see it: not a loss, tested in its own module."""

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {
    "ctc_beam_search": "tests/sequence/test_beam_search.py",
}
