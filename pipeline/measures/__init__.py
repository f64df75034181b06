"""The measurements: emotion-vector math, statistics, Bradley-Terry ratings, readout math,
preference analysis, and the artifact result types with their loaders.

numpy and scipy only: nothing here imports torch or transformers (tests/test_layers.py checks
it), so the scorecard rows and the criteria can be read and run without a model library.
"""
