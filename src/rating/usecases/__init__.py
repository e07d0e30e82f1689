"""Use cases of the rating service: one function per use case, storage reached through ports."""
