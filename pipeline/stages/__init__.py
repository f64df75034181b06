"""The cached stages: each builds one content-addressed artifact from a model runtime and its
upstream artifacts (extraction: stories -> activations -> vectors; readouts; preferences and
steering; mirroring and blackmail rollouts).
"""
