"""Scoring with a pushed model and what follows it: rows in, each batch recorded, outcomes once labels arrive."""
