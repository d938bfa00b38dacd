"""Streamed, mergeable per-layer statistics (counts, sums, co-moments, maxima) and the products behind them."""
