"""Case tables: the schema, importers (one module per source), captions, splits, shards and stats.

``data`` may import ``core`` and ``ontology``. Modules are imported directly
(``dermkit.data.table`` ...), so this face imports nothing.
"""
