"""miex_gen: build, store and read synthetic micro-expression datasets the MiE-X way.

Heavy dependencies (torch, py-feat, mediapipe, cv2) are imported lazily inside the modules
that need them, so that ``import miex_gen`` and ``miex --help`` stay fast.
"""

__version__ = "0.1.0.dev0"
