"""The forklab command."""
