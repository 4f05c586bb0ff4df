"""Framework integrations: middleware that opens a scope per request, Celery task propagation.

Each module imports its framework lazily (or not at all), so none is a dependency of the SDK.
"""
