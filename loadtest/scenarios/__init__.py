"""Locust scenarios (``locust -f loadtest/scenarios/<name>.py``)."""
