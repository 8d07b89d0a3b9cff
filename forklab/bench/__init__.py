"""``forklab bench``: how fast and how large the model runs, beside the host kernel doing the same work."""
