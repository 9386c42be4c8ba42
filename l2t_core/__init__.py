"""l2t_core: the L2T information-gain episode reward as a library.

Data flows one way: engine (generate) -> episodes -> scorer (reward) -> search/rerank.
Nothing here imports FastAPI; the HTTP edge lives in `app/`.
"""

__version__ = "0.1.0"
