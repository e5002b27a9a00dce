"""recognizers: train and judge micro-expression recognizers on miex shards and real clips.

Imports ``miex_gen`` only for the shard reader, the AU vocabulary, datasets and faces;
``miex_gen`` never imports this package.
"""
