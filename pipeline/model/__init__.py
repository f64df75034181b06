"""Everything that runs a model (torch, transformers): loading weights (safetensors or a
packaged GGUF), devices, prompt rendering, hooks, activation capture, the A/B preference pass,
steering, seeded generation and its stopping rule, the story corpus, the generation backends,
and the blackmail scenario and judge.
"""
