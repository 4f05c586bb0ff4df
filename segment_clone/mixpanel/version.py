"""The Mixpanel face's library identity: mixpanel's release whose API and wire it keeps.

Mixpanel groups events by ``$lib_version``, as Segment reads ``context.library``, so the face
sends mixpanel's identity (``mp_lib: "python"``, ``$lib_version: "5.4.1"``) as the Segment face
sends analytics-python's; ``segment_clone.version.VERSION`` is segment_clone's own release.
"""

VERSION = "5.4.1"
