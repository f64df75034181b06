"""Pure measures: numpy/scipy only, never torch."""
