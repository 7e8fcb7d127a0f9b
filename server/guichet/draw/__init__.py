"""The draw: registration, a committed seed, a verifiable ranking, purchase windows."""
