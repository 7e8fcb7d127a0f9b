"""Data protection: a person's access export, erasure where the rules allow it (docs/privacy.md)."""
