"""A gunicorn config module (``--config python:gevent_first``) that monkey-patches with gevent
before the master imports the app, as gevent and gunicorn ask when ``--preload`` is used with
gevent workers (the worker's own patching comes after the fork, too late for preloaded code)."""

from gevent import monkey

monkey.patch_all()
