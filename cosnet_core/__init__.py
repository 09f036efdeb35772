"""cosnet_core: the science of COSNet Studio (featurize, model, train, evaluate, match).

Usable from a notebook or the command line with no app and no database
(``python -m cosnet_core --help``). Must not import streamlit, sqlalchemy, ``db`` or ``pages``.
"""

__version__ = "0.1.0"
