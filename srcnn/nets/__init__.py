"""The networks: one module per architecture (`srcnn`), their CPU-fast training layers, the model file and the
metadata every format carries. Imports data and the base modules."""
