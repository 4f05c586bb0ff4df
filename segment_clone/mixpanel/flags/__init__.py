"""Mixpanel feature flags, as mixpanel 5.4.1 offers them (``pip install 'segment-clone[flags]'``).

``local_feature_flags`` evaluates downloaded definitions in-process; ``remote_feature_flags``
asks Mixpanel per call; both share ``evaluation`` (the assignment), ``types`` and ``utils``.
"""
