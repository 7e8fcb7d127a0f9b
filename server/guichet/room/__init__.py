"""The waiting room: join, pre-queue shuffle, metered admission, admission tokens."""
