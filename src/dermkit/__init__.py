"""dermkit: dermatology AI in one coherent, tested package.

Sub-packages follow the data's one road: ``ontology`` → ``data`` → ``models`` → ``train`` →
``evaluate`` → ``serve``/``collect``; ``core`` holds the few helpers every layer shares.
"""

__version__ = "0.1.0"
