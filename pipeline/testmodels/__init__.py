"""Test models built by the harness itself: the tiny random model and the known-answer toy.

Builders only: nothing in the scorecard path imports this package; the shipped weights under
data/models are what the scorecard reads.
"""
