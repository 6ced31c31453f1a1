"""Tests of the fraud pipeline; `make test` runs them."""
