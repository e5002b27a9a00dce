"""Data for recognizers: sample sources (shards, real clips), frame selection, transforms, flow.

Typical use::

    source = open_data("shards", "out/demo")              # or ("casme2", ROOT), ("megc2019", ROOT)
    train = RecognizerDataset(source, model.input_spec, train=True, seed=0)
"""

from .dataset import DataOptions, RecognizerDataset
from .flow import FlowCache, FlowConfig, compute_flow, flow_features, optical_strain
from .frames import DEFAULT_APEX_R, apex_range, randomise_apex, select_positions
from .open import DATA_KINDS, open_data
from .sampler import EpochBatchSampler
from .sources import ClipSource, ConcatSource, SampleMeta, SampleSource, ShardSource, SubsetSource
from .transforms import AugmentConfig, FrameTransform, flip_flow

__all__ = [
    "AugmentConfig", "ClipSource", "ConcatSource", "DATA_KINDS", "DEFAULT_APEX_R", "DataOptions", "EpochBatchSampler",
    "FlowCache", "FlowConfig", "FrameTransform", "RecognizerDataset", "SampleMeta", "SampleSource", "ShardSource",
    "SubsetSource", "apex_range", "compute_flow", "flip_flow", "flow_features", "open_data", "optical_strain",
    "randomise_apex", "select_positions",
]
