"""Assembled models."""
