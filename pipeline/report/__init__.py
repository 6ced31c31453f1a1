"""Reports: the run's HTML page and the strategy comparison page, with their curves and figures."""
