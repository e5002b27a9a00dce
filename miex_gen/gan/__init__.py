"""GANimation networks, weights files and training (``miex gan``).

``networks`` holds the one definition of the generator (both checkpoint dialects) that the
renderer and the trainer share; ``weights`` reads, checks and converts generator weights files.
"""
