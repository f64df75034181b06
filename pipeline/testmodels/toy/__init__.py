"""The known-answer toy model: a small Llama trained on a synthetic corpus with planted effects.

`corpus` builds the corpus from the paper's stimuli (`phrases` holds its phrase banks),
`intervene` makes the story valence direction causal for the A/B answer during training, and
`train` trains and writes the model (`python -m pipeline.testmodels.toy train`) and its randomly
initialised twin (`python -m pipeline.testmodels.toy random-twin`).
"""
