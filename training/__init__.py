"""Training charrnn models: corpus -> vocabulary -> batches -> model -> checkpoints -> Hub-ready folder."""
