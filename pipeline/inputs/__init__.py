"""What an experiment starts from: the model registry, scale presets, the paper's stimuli and
their lock, command-line checks, the experiment's constants and the artifact store.

Standard library only (plus `tomllib`): no numpy, torch or transformers, so every other layer
may import it.
"""
