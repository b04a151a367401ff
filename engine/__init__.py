"""The serving engine: the catalogue of models the app offers (catalog), the settings it starts with (settings), the
loop that batches many listeners per model (loop) and the processes the loops decode in (workers)."""
