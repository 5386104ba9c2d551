"""privgate tests (a regular package: some wheels install a top-level `tests` that would shadow it)."""
