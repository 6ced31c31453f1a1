"""The simulated transaction log (simulator.py) and its spec."""
