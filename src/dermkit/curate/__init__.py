"""Curation at Derm1M scale: caption tagging, synthetic captions, near-duplicate clusters, embedding.

``curate`` may import ``core``, ``ontology``, ``data`` and ``models``; nothing below it imports
``curate``. Modules are imported directly (``dermkit.curate.tagging`` ...), so using one part
never pulls in the heavy dependencies of another (torch for embedding, pyahocorasick for tagging).
"""
