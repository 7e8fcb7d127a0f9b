"""Guichet's Grafana dashboards as code: one module per audience, built by ``build.py``."""
