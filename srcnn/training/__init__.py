"""Training a network: seeded batches from the patch file and the checkpointed training loop."""
