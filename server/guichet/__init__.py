"""Guichet: waiting room, lottery and live shop for mass ticket sales."""

__version__ = "0.1.0"
