"""The scorecard: criteria and results, the rows (pure functions of cached measurements), and
every renderer of them (terminal, Markdown, JSON, HTML, the layer sweep, figures).
"""
