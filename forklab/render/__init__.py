"""Showing the model: process trees, sharing tables, trace text."""
