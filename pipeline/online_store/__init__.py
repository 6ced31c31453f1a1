"""The online store of the history features: the rows the windows of datasets.history read at serving time."""
