"""CTC forced alignment as the shared suites see it: not a loss, tested in its own module."""

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {
    "ctc_forced_align": "tests/sequence/test_alignment.py",
}
