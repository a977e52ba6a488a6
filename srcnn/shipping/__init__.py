"""Shipping a trained network: exports and their converters, the model card, the shipped models and their
records, the paper's table and the README's results."""
